/**
 * Follow one run: its record (status, node states) and its log lines, live. Both arrive over SSE
 * (fetch-based, so the bearer token goes along): the API pushes a `status` event with the whole
 * run as soon as the run directory or Prefect's state changes. Only while the stream is down
 * (connecting, reconnecting, refused) is the run re-read every second. Lines are de-duplicated by
 * `seq`, so reconnecting or back-filling from GET /logs is harmless.
 */
import { api, authHeaders } from './api';
import { readSse } from './sse';
import type { LogLine, Run, RunStatus } from './types';

const POLL_FALLBACK_MS = 1000;

export const TERMINAL: RunStatus[] = ['completed', 'failed', 'cancelled'];
export const isTerminal = (s: RunStatus | undefined | null) => !!s && TERMINAL.includes(s);

export class RunWatcher {
  run = $state<Run | null>(null);
  logs = $state<LogLine[]>([]);
  streaming = $state(false);
  error = $state<string | null>(null);

  private seen = new Set<number>();
  private abort: AbortController | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private onEnd: ((run: Run) => void) | null;
  private ended = false;

  constructor(onEnd?: (run: Run) => void) {
    this.onEnd = onEnd ?? null;
  }

  async start(id: string | number, initial?: Run): Promise<void> {
    this.stop();
    this.run = initial ?? null;
    this.logs = [];
    this.seen.clear();
    this.ended = false;
    try {
      this.run = await api.get<Run>(`/api/runs/${id}`);
    } catch (e) {
      this.error = e instanceof Error ? e.message : String(e);
      return;
    }
    if (isTerminal(this.run.status)) {
      // an old run: no live updates, no "finished" callback
      this.ended = true;
      await this.backfill(id);
      return;
    }
    this.abort = new AbortController();
    // polling only as the fallback: the stream pushes every change while it is up
    this.timer = setInterval(() => {
      if (!this.streaming) void this.refresh(id);
    }, POLL_FALLBACK_MS);
    void this.stream(id, this.abort.signal);
  }

  stop(): void {
    this.abort?.abort();
    this.abort = null;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.streaming = false;
  }

  private add(line: LogLine): void {
    if (typeof line?.seq !== 'number' || this.seen.has(line.seq)) return;
    this.seen.add(line.seq);
    const i = this.logs.length;
    if (i === 0 || this.logs[i - 1].seq < line.seq) this.logs.push(line);
    else this.logs = [...this.logs, line].sort((a, b) => a.seq - b.seq);
  }

  async backfill(id: string | number): Promise<void> {
    try {
      const lines = await api.get<LogLine[] | { items: LogLine[] }>(`/api/runs/${id}/logs`);
      for (const l of Array.isArray(lines) ? lines : lines.items) this.add(l);
    } catch (e) {
      this.error = e instanceof Error ? e.message : String(e);
    }
  }

  async refresh(id: string | number): Promise<void> {
    try {
      this.apply(id, await api.get<Run>(`/api/runs/${id}`));
      this.error = null;
    } catch (e) {
      this.error = e instanceof Error ? e.message : String(e);
    }
  }

  /** Take a fresh run record (from GET or from an SSE `status` event). */
  private apply(id: string | number, run: Run): void {
    this.run = run;
    if (isTerminal(run.status) && !this.ended && this.abort) {
      this.ended = true;
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
      // give the stream a moment to deliver its last lines, then make sure we have them all
      setTimeout(() => void this.backfill(id), 500);
      this.onEnd?.(run);
    }
  }

  private async stream(id: string | number, signal: AbortSignal): Promise<void> {
    for (let attempt = 0; attempt < 30 && !signal.aborted; attempt++) {
      try {
        const res = await fetch(`/api/runs/${id}/logs/stream`, {
          headers: { Accept: 'text/event-stream', ...authHeaders() },
          signal,
        });
        if (!res.ok || !res.body) throw new Error(`log stream: HTTP ${res.status}`);
        this.streaming = true;
        await readSse(res.body, (ev) => {
          if (ev.event === 'status') {
            // the API sends the whole run; anything else (a bare status word) means "re-read it"
            let run: Run | null = null;
            try {
              const x = JSON.parse(ev.data);
              if (x && typeof x === 'object' && 'status' in x && 'id' in x) run = x as Run;
            } catch {
              /* not JSON */
            }
            if (run) this.apply(id, run);
            else void this.refresh(id);
            return;
          }
          try {
            this.add(JSON.parse(ev.data) as LogLine);
          } catch {
            /* a keep-alive or non-JSON line: ignore */
          }
        });
      } catch (e) {
        if (signal.aborted) return;
        this.error = e instanceof Error ? e.message : String(e);
        await this.backfill(id);
      } finally {
        this.streaming = false;
      }
      // the stream closes when the run ends
      await this.refresh(id);
      if (this.ended || signal.aborted) return;
      await new Promise((r) => setTimeout(r, 1000 + attempt * 500));
    }
  }
}
