// A stand-in for the run routes while the real ones do not exist: an HTTP proxy to a running
// API that answers /api/pipelines/{id}/runs, /api/runs/{id}, its logs (JSON and SSE), results
// and exports itself, with a run that goes pending → running → completed in a few seconds and a
// deterministic equity curve. Everything else is forwarded untouched (also the built UI).
//   node runs_stub.mjs --port 8001 --upstream http://127.0.0.1:8000
import http from 'node:http';
import { args } from './harness.mjs';

const opt = args();
const port = Number(opt.port ?? 8001);
const upstream = new URL(opt.upstream ?? 'http://127.0.0.1:8000');
const runs = new Map();
let nextId = 1;
const NODES = ['data', 'fast', 'slow', 'signal', 'result'];

function makeRun(pipelineId, version) {
  const id = nextId++;
  const t0 = Date.now();
  const run = { id, pipeline_id: Number(pipelineId), version: version ?? 1, trigger: 'manual', created_at: new Date(t0).toISOString(), t0 };
  runs.set(id, run);
  return run;
}

function state(run) {
  const age = (Date.now() - run.t0) / 1000;
  const cancelled = run.cancelledAt !== undefined;
  const status = cancelled ? 'cancelled' : age < 1 ? 'pending' : age < 5 ? 'running' : 'completed';
  const node_states = {};
  NODES.forEach((n, i) => {
    const done = age > 1.5 + i * 0.7;
    node_states[n] = cancelled && !done ? 'cancelled' : status === 'pending' ? 'pending' : done ? 'completed' : age > 1 + i * 0.7 ? 'running' : 'pending';
  });
  const finished = status === 'completed' ? new Date(run.t0 + 5000).toISOString() : cancelled ? new Date(run.cancelledAt).toISOString() : null;
  const m = metrics(run.id);
  return {
    id: run.id, pipeline_id: run.pipeline_id, version: run.version, status, trigger: run.trigger,
    created_at: run.created_at, started_at: age >= 1 ? new Date(run.t0 + 1000).toISOString() : null, finished_at: finished,
    metrics: status === 'completed' ? { sharpe: m.sharpe, total_return: m.total_return, max_drawdown: m.max_drawdown, num_trades: m.num_trades } : null,
    node_states, error: null, mlflow_run_id: 'abc123', mlflow_url: 'http://127.0.0.1:5000/#/experiments/1/runs/abc123',
    prefect_flow_run_id: 'f-1', prefect_url: 'http://127.0.0.1:4200/runs/flow-run/f-1', ir_hash: 'deadbeef'.repeat(8),
  };
}

function logs(run) {
  const age = (Date.now() - run.t0) / 1000;
  const out = [];
  NODES.forEach((n, i) => {
    if (age > 1 + i * 0.7) out.push({ node_id: n, level: 'INFO', message: `${n}: started` });
    if (age > 1.5 + i * 0.7) out.push({ node_id: n, level: 'INFO', message: `${n}: done in ${(0.1 + i / 10).toFixed(2)} s <b>not html</b>` });
  });
  if (age > 5) out.push({ node_id: null, level: 'INFO', message: 'run completed' });
  return out.map((l, seq) => ({ seq, ts: new Date(run.t0 + 1000 + seq * 300).toISOString(), ...l }));
}

function curve(id) {
  let eq = 100000, peak = eq, x = id * 7919;
  const rnd = () => ((x = (x * 48271) % 2147483647) / 2147483647);
  const out = [];
  for (let d = 0; d < 750; d++) {
    eq *= 1 + (rnd() - 0.48) * 0.02;
    peak = Math.max(peak, eq);
    out.push({ ts: new Date(Date.UTC(2021, 0, 4) + d * 86400000).toISOString(), equity: eq, drawdown: eq / peak - 1 });
  }
  return out;
}
function metrics(id) {
  const c = curve(id);
  return { total_return: c.at(-1).equity / 1e5 - 1, sharpe: 0.4 + id / 10, max_drawdown: Math.min(...c.map((p) => p.drawdown)), num_trades: 20 + id, cagr: 0.05, win_rate: 0.52, final_equity: c.at(-1).equity, start: c[0].ts, end: c.at(-1).ts };
}
function trades(id) {
  return Array.from({ length: 20 + id }, (_, i) => ({
    entry_ts: new Date(Date.UTC(2021, 0, 4) + i * 30 * 86400000).toISOString(), exit_ts: new Date(Date.UTC(2021, 0, 4) + (i * 30 + 20) * 86400000).toISOString(),
    side: i % 2 ? 'short' : 'long', units: 100 + i, entry_price: 100 + i, exit_price: 100 + i + ((i * 37) % 11) - 5, fees: 1.5, pnl: (((i * 37) % 11) - 5) * 100, return: (((i * 37) % 11) - 5) / 100, bars_held: 20, is_open: false,
  }));
}

const json = (res, code, body) => {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

http
  .createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    let m;
    if ((m = url.pathname.match(/^\/api\/pipelines\/(\d+)\/runs$/))) {
      if (req.method === 'POST') {
        let body = '';
        for await (const c of req) body += c;
        const run = makeRun(m[1], JSON.parse(body || '{}').version);
        return json(res, 202, state(run));
      }
      const items = [...runs.values()].filter((r) => r.pipeline_id === Number(m[1])).reverse().map(state);
      return json(res, 200, { items, total: items.length });
    }
    if ((m = url.pathname.match(/^\/api\/runs\/(\d+)(\/.*)?$/))) {
      const run = runs.get(Number(m[1]));
      if (!run) return json(res, 404, { detail: 'run not found' });
      const rest = m[2] ?? '';
      if (rest === '') return json(res, 200, state(run));
      if (rest === '/cancel') {
        if (state(run).status !== 'completed') run.cancelledAt = Date.now();
        return json(res, 200, state(run));
      }
      if (rest === '/logs') return json(res, 200, logs(run));
      if (rest === '/results') return json(res, 200, { metrics: metrics(run.id), equity: curve(run.id), trades: trades(run.id) });
      if (rest === '/export/metrics.json') return json(res, 200, metrics(run.id));
      if (rest === '/logs/stream') {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
        let sent = 0;
        let last = null;
        const tick = () => {
          const s = state(run);
          if (s.status !== last) res.write(`event: status\ndata: ${JSON.stringify(s)}\n\n`);
          last = s.status;
          for (const l of logs(run).slice(sent)) res.write(`data: ${JSON.stringify(l)}\n\n`);
          sent = logs(run).length;
          if (['completed', 'failed', 'cancelled'].includes(s.status)) {
            clearInterval(timer);
            res.end();
          }
        };
        const timer = setInterval(tick, 250);
        req.on('close', () => clearInterval(timer));
        return tick();
      }
      return json(res, 404, { detail: 'Not Found' });
    }
    // everything else: forward
    const fwd = http.request({ hostname: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode, up.headers);
      up.pipe(res);
    });
    fwd.on('error', (e) => json(res, 502, { detail: String(e) }));
    req.pipe(fwd);
  })
  .listen(port, '127.0.0.1', () => console.log(`runs stub on http://127.0.0.1:${port} → ${upstream.origin}`));
