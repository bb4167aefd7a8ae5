// Sandbox entrypoint for JavaScript custom nodes: node node_entry.js [--wait] JOB_DIR OUT_DIR.
//
// Reads job.json, params.json and the JSON columnar inputs from JOB_DIR (read-only), loads the
// user's code as a CommonJS module, calls its run(inputs, params) and writes each declared output
// to OUT_DIR/<port>.json. Inputs: a series is { name, index, values: Float64Array }, a table is
// { index, columns: { name: Float64Array } }. Everything is untrusted once user code runs; the
// host validates the files afterwards. Exit codes: 0 ok, 1 user error, 2 bad outputs.
'use strict';
const fs = require('fs');
const path = require('path');
const Module = require('module');

let args = process.argv.slice(2);
if (args[0] === '--wait') {
  // Pooled mode: block until the host writes "go" into the FIFO, then run the job.
  args = args.slice(1);
  fs.writeFileSync(path.join(args[1], '.ready'), '');
  if (fs.readFileSync(path.join(args[0], 'go'), 'utf8') !== 'go') {
    process.stderr.write('alphaforge-sandbox: pooled container released without a job\n');
    process.exit(1);
  }
}
const [jobDir, outDir] = args;
// Blocking stdout/stderr: console.log waits for the host to read (whose cap then applies)
// instead of queueing endless output in memory.
for (const stream of [process.stdout, process.stderr]) {
  if (stream._handle && typeof stream._handle.setBlocking === 'function') {
    stream._handle.setBlocking(true);
  }
}
// One stream for everything printed (console.error and process.stderr included), as the Python
// entrypoint does with dup2: stdout and stderr are two pipes the engine copies independently, so
// only on one stream does the completion line come after every earlier log line, and the host
// can stop reading at that line instead of waiting for the streams to close.
Object.defineProperty(process, 'stderr', {
  configurable: true,
  enumerable: true,
  get: () => process.stdout,
});
const readJson = (p) => JSON.parse(fs.readFileSync(p, 'utf8'));

// The last line on stdout: lets the host finish without waiting for the engine to notice the
// exit (~0.1 s). Untrusted like everything here: it can only report what an exit code could.
const DONE = '@@alphaforge-done@@';

function finish(code) {
  process.stdout.write(`\n${DONE} ${code}\n`);
  process.exit(code);
}

function fail(code, message) {
  process.stderr.write(`alphaforge-sandbox: ${message}\n`);
  finish(code);
}

// The user's error: its message and the stack frames in the user's code (the runtime's own
// frames say nothing to them), then one summary line with where it happened, which the host
// takes as the node's error message.
function reportUserError(err) {
  const stack = err && err.stack ? String(err.stack) : String(err);
  const isFrame = (l) => /^\s+at /.test(l);
  const lines = stack.split('\n');
  const head = lines.filter((l) => !isFrame(l));
  const mine = lines.filter((l) => isFrame(l) && l.includes(`${jobDir}/`));
  process.stderr.write(`${[...head, ...mine].join('\n')}\n`);
  // a frame "(/job/code.js:3:9)", or a syntax error's first line "/job/code.js:3"
  const at = mine.length
    ? /:(\d+):\d+\)?\s*$/.exec(mine[0])
    : /^\S+:(\d+)\s*$/.exec(head[0] && head[0].includes(`${jobDir}/`) ? head[0] : '');
  const where = at ? ` (line ${at[1]} of the node's code)` : '';
  const what = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  fail(1, `${what.replace(/\s+/g, ' ').trim().slice(0, 300)}${where}`);
}

function loadInputs(job) {
  const inputs = {};
  for (const spec of job.inputs) {
    const meta = readJson(path.join(jobDir, 'inputs', spec.file));
    // The values: little-endian float64, one column after the other (NaN = missing). Copied
    // out of the file's buffer, which need not be 8-byte aligned.
    const raw = fs.readFileSync(path.join(jobDir, 'inputs', meta.values_file));
    const n = meta.rows;
    const expected = 8 * n * meta.columns.length;
    if (raw.byteLength !== expected) {
      fail(1, `input '${spec.name}': ${raw.byteLength} bytes of values, expected ${expected}`);
    }
    const all = new Float64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
    const columns = {};
    meta.columns.forEach((name, k) => { columns[name] = all.slice(k * n, (k + 1) * n); });
    inputs[spec.name] = spec.kind === 'series'
      ? { name: meta.name, index: meta.index, values: columns[spec.columns[0]] }
      : { index: meta.index, columns };
  }
  return inputs;
}

function loadUserModule(file) {
  const source = fs.readFileSync(file, 'utf8');
  const m = new Module(file, null);
  m.filename = file;
  m.paths = [];
  const suffix = "\n;if (typeof run === 'function' && !module.exports.run) module.exports.run = run;\n";
  m._compile(source + suffix, file);
  if (typeof m.exports.run !== 'function') fail(1, 'the node defines no run(inputs, params)');
  return m.exports;
}

// Numbers go to the host as they are, for it to check (it names the row and refuses what is not
// finite): NaN is a missing value (null), +-Infinity is written as Python's json does
// (Infinity, -Infinity) instead of JSON.stringify's silent null. Placeholders stand for what
// JSON cannot spell and are swapped for the tokens in the text afterwards.
const TOKENS = { '\u0000af:+inf': 'Infinity', '\u0000af:-inf': '-Infinity', '\u0000af:nan': 'NaN' };
function infinity(v) {
  return v > 0 ? '\u0000af:+inf' : '\u0000af:-inf';
}

const floats = (values) => Array.from(values, (v) => {
  if (Number.isFinite(v)) return v;
  if (typeof v === 'number' && Number.isNaN(v)) return null;
  if (typeof v === 'bigint') return `\u0000af:int:${v.toString()}`;
  return v === Infinity || v === -Infinity ? infinity(v) : v;
});

// Metrics: every value as written, NaN included (a metric may be null, never NaN); a BigInt as
// its digits (the host refuses one too large for a float).
function metricValue(key, v) {
  if (typeof v === 'bigint') {
    return `\u0000af:int:${v.toString()}`;
  }
  if (typeof v !== 'number' || Number.isFinite(v)) return v;
  if (Number.isNaN(v)) {
    return '\u0000af:nan';
  }
  return infinity(v);
}

function serialise(data, isMetrics) {
  const text = JSON.stringify(data, isMetrics ? metricValue : undefined);
  if (!text.includes('"\\u0000af:')) return text;
  return text
    .replace(/"\\u0000af:int:(-?\d+)"/g, '$1')
    .replace(/"\\u0000af:[-+a-z]+"/g, (m) => TOKENS[JSON.parse(m)] || m);
}

function toColumnar(value, port) {
  if (port.type === 'metrics') return { kind: 'metrics', values: value };
  if (port.type === 'series' || port.type === 'signal') {
    const isArr = Array.isArray(value) || ArrayBuffer.isView(value);
    if (isArr) return { kind: 'series', values: floats(value) };
    return { kind: 'series', index: value.index || null, values: floats(value.values) };
  }
  const columns = {};
  for (const [name, values] of Object.entries(value.columns)) columns[name] = floats(values);
  return { kind: 'frame', index: value.index || null, columns };
}

async function main() {
  const job = readJson(path.join(jobDir, 'job.json'));
  const params = readJson(path.join(jobDir, 'params.json'));
  const user = loadUserModule(path.join(jobDir, job.code_file));
  let outputs;
  try {
    outputs = await user.run(loadInputs(job), params);
  } catch (err) {
    reportUserError(err);
  }
  if (outputs === null || typeof outputs !== 'object') fail(2, 'run() must return an object');
  for (const port of job.outputs) {
    if (!(port.name in outputs)) fail(2, `output '${port.name}' was not produced`);
    let data;
    try {
      data = toColumnar(outputs[port.name], port);
    } catch (err) {
      fail(2, `output '${port.name}': ${err}`);
    }
    let text;
    try {
      text = serialise(data, port.type === 'metrics');
    } catch (err) {
      fail(2, `output '${port.name}': ${err}`);
    }
    fs.writeFileSync(path.join(outDir, `${port.name}.json`), text);
  }
  finish(0);
}

main().catch(reportUserError);
