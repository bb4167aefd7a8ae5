/** Links the UI builds from API answers. Pure. */
import type { Share } from './types';

/**
 * The full URL of a share link. The API gives `url` as an absolute URL (when it knows its
 * public address) or as a path; the UI page is `/shared/{token}` either way.
 */
export function shareUrl(s: Pick<Share, 'url' | 'token'>, origin: string): string {
  if (s.url && /^https?:\/\//.test(s.url)) return s.url;
  if (s.url && s.url.startsWith('/')) return origin + s.url;
  return `${origin}/shared/${encodeURIComponent(s.token)}`;
}
