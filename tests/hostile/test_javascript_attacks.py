"""Hostile JavaScript nodes (Node.js 20 with a heap limit): each attack ends safely."""

from __future__ import annotations

import pytest

from tests.hostile.conftest import Concurrent, Sandbox

pytestmark = pytest.mark.docker

FAST = {"wall_s": 4}


def js(body: str) -> str:
    return f"async function run(inputs, params) {{\n{body}\n}}\nmodule.exports = {{ run }};\n"


def test_js_fork_bomb_is_stopped_by_the_pids_limit(sandbox: Sandbox) -> None:
    code = js(
        "const cp = require('child_process');\n"
        "for (let i = 0; i < 500; i++) {\n"
        "  cp.spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);\n"
        "}\n"
        "await new Promise((r) => setTimeout(r, 3000));\n"
        "return { report: {} };"
    )
    with Concurrent(sandbox):
        out = sandbox.run("javascript", code, resources={"wall_s": 10})
    assert out.result.error_kind == "PIDS_LIMIT", out.log[-2000:]


def test_js_thread_bomb_is_stopped(sandbox: Sandbox) -> None:
    code = js(
        "const { Worker } = require('worker_threads');\n"
        "for (let i = 0; i < 200; i++) {\n"
        "  new Worker('setInterval(() => {}, 1000)', { eval: true });\n"
        "}\n"
        "await new Promise((r) => setTimeout(r, 3000));\n"
        "return { report: {} };"
    )
    out = sandbox.run("javascript", code, resources={"wall_s": 10})
    assert out.result.error_kind in ("PIDS_LIMIT", "MEMORY_LIMIT"), out.log[-2000:]


def test_js_one_gib_buffer_is_a_memory_limit(sandbox: Sandbox) -> None:
    code = js("const b = Buffer.alloc(1 << 30, 1);\nreturn { report: { n: b.length } };")
    with Concurrent(sandbox):
        out = sandbox.run("javascript", code)
    assert out.result.error_kind == "MEMORY_LIMIT", out.log[-2000:]


def test_js_heap_bomb_hits_the_heap_limit(sandbox: Sandbox) -> None:
    code = js("const keep = [];\nfor (;;) keep.push({ a: Math.random(), b: [1, 2, 3] });")
    out = sandbox.run("javascript", code)
    assert out.result.error_kind == "MEMORY_LIMIT", out.log[-2000:]
    assert "heap" in out.log


def test_js_infinite_loop_is_killed_at_the_wall_time(sandbox: Sandbox) -> None:
    with Concurrent(sandbox):
        out = sandbox.run("javascript", js("for (;;) {}"), resources=FAST)
    assert out.result.error_kind == "TIMEOUT", (out.result.error, out.log[-1500:])


def test_js_sleep_forever_is_killed_at_the_wall_time(sandbox: Sandbox) -> None:
    code = js("setInterval(() => {}, 1000);\nawait new Promise(() => {});")
    out = sandbox.run("javascript", code, resources=FAST)
    assert out.result.error_kind == "TIMEOUT", (out.result.error, out.log[-1500:])


def test_js_endless_console_log_is_capped_and_killed(sandbox: Sandbox) -> None:
    out = sandbox.run("javascript", js("for (;;) console.log('x'.repeat(1000));"))
    assert out.result.error_kind == "OUTPUT_LIMIT", (out.result.error, out.log[-1500:])
    assert len(out.log.encode()) < 2 * (1 << 20)


def test_js_huge_file_in_tmp_hits_the_small_tmpfs(sandbox: Sandbox) -> None:
    code = js(
        "const fs = require('fs');\n"
        "const mb = Buffer.alloc(1 << 20, 120);\n"
        "for (let i = 0; i < 200; i++) fs.appendFileSync('/tmp/big', mb);\n"
        "return { report: {} };"
    )
    out = sandbox.run("javascript", code)
    assert out.result.error_kind == "USER_ERROR", (out.result.error, out.log[-1500:])
    assert "ENOSPC" in out.log


def test_js_cannot_write_outside_the_output_dir_and_nothing_persists(sandbox: Sandbox) -> None:
    code = js(
        "const fs = require('fs');\n"
        "let written = 0;\n"
        "const seen = ['/tmp/js-marker', '/out/js-marker'].filter((p) => fs.existsSync(p));\n"
        "for (const p of ['/x', '/etc/passwd', '/usr/x', '/opt/alphaforge/node_entry.js',\n"
        "                 '/job/params.json', '/proc/x']) {\n"
        "  try { fs.appendFileSync(p, 'x'); written++; } catch (e) {}\n"
        "}\n"
        "fs.writeFileSync('/tmp/js-marker', 'x');\n"
        "fs.writeFileSync('/out/js-marker', 'x');\n"
        "return { report: { written, seen: seen.length } };"
    )
    first = sandbox.run("javascript", code)
    assert first.report == {"written": 0, "seen": 0}
    second = sandbox.run("javascript", code)
    assert second.report == {"written": 0, "seen": 0}


def test_js_cannot_read_shadow_or_the_hosts_environment(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALPHAFORGE_TEST_SECRET", "hunter2-host-secret")
    code = js(
        "const fs = require('fs');\n"
        "const read = (p) => { try { return fs.readFileSync(p, 'latin1'); } catch (e) "
        "{ return ''; } };\n"
        "const env = JSON.stringify(process.env);\n"
        "const blob = read('/etc/shadow') + read('/proc/1/environ') + env;\n"
        "return { report: { shadow: read('/etc/shadow').length,\n"
        "                   secret: blob.includes('hunter2') ? 1 : 0 } };"
    )
    out = sandbox.run("javascript", code)
    assert out.report == {"shadow": 0, "secret": 0}


def test_js_has_no_network_by_ip_by_name_or_dns(sandbox: Sandbox) -> None:
    code = js(
        "const net = require('net');\n"
        "const dns = require('dns').promises;\n"
        "const attempt = (host, port) => new Promise((resolve) => {\n"
        "  const s = net.connect({ host, port, timeout: 2000 });\n"
        "  s.on('connect', () => { s.destroy(); resolve(1); });\n"
        "  s.on('error', () => resolve(0));\n"
        "  s.on('timeout', () => { s.destroy(); resolve(0); });\n"
        "});\n"
        "let reached = 0;\n"
        "for (const [h, p] of [['1.1.1.1', 53], ['172.17.0.1', 5432], ['example.com', 80]]) {\n"
        "  reached += await attempt(h, p);\n"
        "}\n"
        "try { await dns.lookup('pypi.org'); reached++; } catch (e) {}\n"
        "const ifaces = Object.keys(require('os').networkInterfaces()).filter((n) => n !== 'lo');\n"
        "return { report: { reached, non_loopback: ifaces.length } };"
    )
    out = sandbox.run("javascript", code)
    assert out.report == {"reached": 0, "non_loopback": 0}


def test_js_sees_only_its_own_processes_and_cannot_setuid(sandbox: Sandbox) -> None:
    code = js(
        "const fs = require('fs');\n"
        "const pids = fs.readdirSync('/proc').filter((p) => /^\\d+$/.test(p));\n"
        "let setuid = 0;\n"
        "try { process.setuid(0); setuid = 1; } catch (e) {}\n"
        "return { report: { pids: pids.length, setuid, uid: process.getuid() } };"
    )
    out = sandbox.run("javascript", code)
    assert out.report is not None
    assert out.report["setuid"] == 0 and out.report["uid"] == 10001
    assert out.report["pids"] <= 2


def test_js_symlink_in_the_output_dir_is_refused(sandbox: Sandbox) -> None:
    code = js("require('fs').symlinkSync('/etc/passwd', '/out/report.json');\nprocess.exit(0);")
    out = sandbox.run("javascript", code)
    assert out.result.error_kind == "SANDBOX_VIOLATION", (out.result.error, out.log[-1500:])


def test_js_reading_all_of_dev_urandom_is_stopped(sandbox: Sandbox) -> None:
    code = js("require('fs').readFileSync('/dev/urandom');\nreturn { report: {} };")
    out = sandbox.run("javascript", code, resources={"wall_s": 10})
    assert out.result.error_kind in ("MEMORY_LIMIT", "TIMEOUT", "USER_ERROR"), out.log[-2000:]
