/** Keeps the visible time range of several lightweight-charts in step (zoom/pan one, the
 * others follow). Charts may have different bars: the range is matched by time. */
import type { IChartApi, IRange, Time } from 'lightweight-charts';

export class TimeSync {
  private charts = new Map<IChartApi, (r: IRange<Time> | null) => void>();
  private applying: IChartApi | null = null;
  private last: string | null = null;

  /** Join `chart` to the group; the returned function leaves it. */
  add(chart: IChartApi): () => void {
    const handler = (r: IRange<Time> | null) => {
      if (!r || this.applying) return;
      const key = `${r.from}-${r.to}`;
      if (key === this.last) return; // the echo of a range we applied
      this.last = key;
      for (const other of this.charts.keys()) {
        if (other === chart) continue;
        this.applying = other;
        try {
          other.timeScale().setVisibleRange(r);
        } catch {
          // the other chart has no data yet: it fits its content when it gets some
        } finally {
          this.applying = null;
        }
      }
    };
    this.charts.set(chart, handler);
    chart.timeScale().subscribeVisibleTimeRangeChange(handler);
    return () => {
      chart.timeScale().unsubscribeVisibleTimeRangeChange(handler);
      this.charts.delete(chart);
    };
  }
}
