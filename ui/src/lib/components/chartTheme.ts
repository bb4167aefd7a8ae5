/** Colours of the lightweight-charts charts for the current DaisyUI theme. */
import { ColorType } from 'lightweight-charts';

export function chartPalette(dark: boolean) {
  return {
    layout: {
      background: { type: ColorType.Solid, color: 'transparent' },
      textColor: dark ? '#c8ccd4' : '#374151',
    },
    grid: {
      vertLines: { color: dark ? 'rgba(255,255,255,0.06)' : 'rgba(0,0,0,0.06)' },
      horzLines: { color: dark ? 'rgba(255,255,255,0.06)' : 'rgba(0,0,0,0.06)' },
    },
  };
}

/** Up/down and marker colours that read on both themes. */
export const MARKET = {
  up: '#16a34a',
  down: '#dc2626',
  long: '#16a34a',
  short: '#ea580c',
  win: '#16a34a',
  loss: '#dc2626',
  benchmark: '#9ca3af',
};
