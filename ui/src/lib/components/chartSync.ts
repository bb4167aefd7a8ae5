/** Keeps the visible time range of several lightweight-charts in step: zoom or pan one, the
 * others follow. Only a range change the user caused (wheel, drag, touch, a Fit click inside
 * the chart's box) is passed on, so the charts' own start-up fitting never fights. Charts may
 * have different bars: the range is matched by time. */
import type { IChartApi, IRange, Time } from 'lightweight-charts';

const USER_EVENTS = ['pointerdown', 'pointermove', 'wheel', 'touchstart', 'click', 'dblclick'] as const;
const ACTIVE_MS = 1500;

export class TimeSync {
  private charts = new Set<IChartApi>();
  private active: IChartApi | null = null;
  private activeUntil = 0;

  /** Join `chart` (drawn inside `box`) to the group; the returned function leaves it. */
  add(chart: IChartApi, box: HTMLElement): () => void {
    const touched = (e: Event) => {
      if (e.type === 'pointermove' && !((e as PointerEvent).buttons & 1)) return;
      this.active = chart;
      this.activeUntil = Date.now() + ACTIVE_MS;
    };
    const handler = (r: IRange<Time> | null) => {
      if (!r || this.active !== chart || Date.now() > this.activeUntil) return;
      for (const other of this.charts) {
        if (other === chart) continue;
        try {
          other.timeScale().setVisibleRange(r);
        } catch {
          // the other chart has no data yet
        }
      }
    };
    for (const ev of USER_EVENTS) box.addEventListener(ev, touched, { passive: true });
    this.charts.add(chart);
    chart.timeScale().subscribeVisibleTimeRangeChange(handler);
    return () => {
      for (const ev of USER_EVENTS) box.removeEventListener(ev, touched);
      chart.timeScale().unsubscribeVisibleTimeRangeChange(handler);
      this.charts.delete(chart);
    };
  }
}
