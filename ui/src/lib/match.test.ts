import { describe, expect, it } from 'vitest';
import { match } from './match';

describe('match', () => {
  it('matches static and parameterised routes', () => {
    expect(match('/', '/')).toEqual({});
    expect(match('/pipelines/:id', '/pipelines/42')).toEqual({ id: '42' });
    expect(match('/shared/:token', '/shared/a%20b')).toEqual({ token: 'a b' });
    expect(match('/pipelines/:id', '/pipelines/42/x')).toBeNull();
    expect(match('/runs/:id', '/pipelines/1')).toBeNull();
    expect(match('/datasets', '/datasets/')).toEqual({});
  });
});
