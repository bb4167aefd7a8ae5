/** Colour scale of the monthly returns table. Pure. */

/** The return that gets the strongest colour: the largest absolute value (at least 1 %). */
export function colourScale(values: (number | null | undefined)[]): number {
  let m = 0;
  for (const v of values) if (typeof v === 'number' && Number.isFinite(v)) m = Math.max(m, Math.abs(v));
  return Math.max(m, 0.01);
}

/** CSS background for a return: green for gains, red for losses, stronger when larger
 * (5 % to 60 % of the theme colour); none for a missing month. */
export function cellColour(v: number | null | undefined, scale: number): string | undefined {
  if (typeof v !== 'number' || !Number.isFinite(v) || v === 0) return undefined;
  const share = Math.round(5 + 55 * Math.min(Math.abs(v) / scale, 1));
  return `color-mix(in oklab, var(--color-${v > 0 ? 'success' : 'error'}) ${share}%, transparent)`;
}
