"""Hostile Python nodes: each attack ends in its named safe outcome, the host untouched."""

from __future__ import annotations

import os

import pytest

from tests.hostile.conftest import Concurrent, Sandbox

pytestmark = pytest.mark.docker

FAST = {"wall_s": 4}


def test_python_fork_bomb_is_stopped_by_the_pids_limit(sandbox: Sandbox) -> None:
    code = "import os\ndef run(inputs, params):\n    while True:\n        os.fork()\n"
    with Concurrent(sandbox):
        out = sandbox.run("python", code)
    assert out.result.error_kind == "PIDS_LIMIT", (out.result.error, out.log[-1500:])
    assert "'attack'" in out.result.error


def test_python_thread_bomb_is_stopped_by_the_pids_limit(sandbox: Sandbox) -> None:
    code = (
        "import threading, time\n"
        "def run(inputs, params):\n"
        "    while True:\n"
        "        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
    )
    out = sandbox.run("python", code)
    assert out.result.error_kind == "PIDS_LIMIT", (out.result.error, out.log[-1500:])


def test_python_one_gib_allocation_is_a_memory_limit(sandbox: Sandbox) -> None:
    code = (
        "def run(inputs, params):\n"
        "    block = bytearray(1 << 30)\n"
        "    for i in range(0, len(block), 4096):\n"
        "        block[i] = 1\n"
        "    return {'report': {}}\n"
    )
    with Concurrent(sandbox):
        out = sandbox.run("python", code)
    assert out.result.error_kind == "MEMORY_LIMIT", (out.result.error, out.log[-1500:])
    assert "512 MiB" in out.result.error


def test_python_busy_loop_is_killed_at_the_wall_time(sandbox: Sandbox) -> None:
    code = "def run(inputs, params):\n    while True:\n        pass\n"
    with Concurrent(sandbox):
        out = sandbox.run("python", code, resources=FAST)
    assert out.result.error_kind == "TIMEOUT", (out.result.error, out.log[-1500:])


def test_python_sleep_forever_is_killed_at_the_wall_time(sandbox: Sandbox) -> None:
    code = "import time\ndef run(inputs, params):\n    time.sleep(10**6)\n"
    out = sandbox.run("python", code, resources=FAST)
    assert out.result.error_kind == "TIMEOUT", (out.result.error, out.log[-1500:])


def test_python_endless_stdout_is_capped_and_killed(sandbox: Sandbox) -> None:
    code = "def run(inputs, params):\n    while True:\n        print('x' * 1000)\n"
    with Concurrent(sandbox):
        out = sandbox.run("python", code)
    assert out.result.error_kind == "OUTPUT_LIMIT", (out.result.error, out.log[-1500:])
    assert len(out.log.encode()) < 2 * (1 << 20)  # 1 MiB cap plus tags


def test_python_huge_file_in_tmp_hits_the_small_tmpfs(sandbox: Sandbox) -> None:
    code = (
        "def run(inputs, params):\n"
        "    with open('/tmp/big', 'wb') as fh:\n"
        "        for _ in range(200):\n"
        "            fh.write(b'x' * (1 << 20))\n"
        "    return {'report': {}}\n"
    )
    out = sandbox.run("python", code)
    assert out.result.error_kind == "USER_ERROR", (out.result.error, out.log[-1500:])
    assert "No space left on device" in out.log


def test_python_huge_output_file_is_an_output_limit(sandbox: Sandbox) -> None:
    code = (
        "def run(inputs, params):\n"
        "    with open('/out/big', 'wb') as fh:\n"
        "        for _ in range(100):\n"
        "            fh.write(b'x' * (1 << 20))\n"
        "    return {'report': {}}\n"
    )
    out = sandbox.run("python", code, resources={"output_mb": 8})
    assert out.result.error_kind == "OUTPUT_LIMIT", (out.result.error, out.log[-1500:])


def test_python_cannot_write_outside_the_output_dir(sandbox: Sandbox) -> None:
    code = (
        "def run(inputs, params):\n"
        "    written = []\n"
        "    for p in ['/x', '/etc/passwd', '/usr/x', '/opt/alphaforge/python_entry.py',\n"
        "              '/job/params.json', '/job/inputs/x.json', '/proc/x', '/sys/x']:\n"
        "        try:\n"
        "            open(p, 'a').write('x')\n"
        "            written.append(p)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return {'report': {'written': len(written)}}\n"
    )
    out = sandbox.run("python", code)
    assert out.result.ok, out.result.error
    assert out.report == {"written": 0}


def test_python_files_do_not_persist_into_the_next_run(sandbox: Sandbox) -> None:
    first = (
        "def run(inputs, params):\n"
        "    open('/tmp/marker', 'w').write('x')\n"
        "    open('/out/marker', 'w').write('x')\n"
        "    return {'report': {}}\n"
    )
    second = (
        "import os\n"
        "def run(inputs, params):\n"
        "    seen = [p for p in ['/tmp/marker', '/out/marker'] if os.path.exists(p)]\n"
        "    return {'report': {'seen': len(seen), 'out_entries': len(os.listdir('/out'))}}\n"
    )
    assert sandbox.run("python", first).result.ok
    out = sandbox.run("python", second)
    assert out.report == {"seen": 0, "out_entries": 0}


def test_python_cannot_read_shadow_or_the_hosts_environment(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALPHAFORGE_TEST_SECRET", "hunter2-host-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter2-aws")
    code = (
        "import os\n"
        "def run(inputs, params):\n"
        "    def read(p):\n"
        "        try:\n"
        "            return open(p, 'rb').read().decode('latin-1')\n"
        "        except OSError:\n"
        "            return ''\n"
        "    blob = read('/etc/shadow') + read('/proc/1/environ') + repr(dict(os.environ))\n"
        "    print(sorted(os.environ))\n"
        "    return {'report': {\n"
        "        'shadow': len(read('/etc/shadow')),\n"
        "        'secret': int('hunter2' in blob),\n"
        "        'names': len(set(os.environ) - {'PATH', 'HOME', 'LANG', 'TZ', 'HOSTNAME',\n"
        "            'PYTHONUNBUFFERED', 'PYTHONDONTWRITEBYTECODE', 'OMP_NUM_THREADS',\n"
        "            'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'}),\n"
        "    }}\n"
    )
    assert os.environ["ALPHAFORGE_TEST_SECRET"]
    out = sandbox.run("python", code)
    assert out.report == {"shadow": 0, "secret": 0, "names": 0}


def test_python_has_no_network_by_ip_by_name_or_dns(sandbox: Sandbox) -> None:
    code = (
        "import socket\n"
        "def run(inputs, params):\n"
        "    reached = 0\n"
        "    for target in [('1.1.1.1', 53), ('172.17.0.1', 5432), ('127.0.0.1', 5432),\n"
        "                   ('example.com', 80), ('pypi.org', 443)]:\n"
        "        try:\n"
        "            socket.create_connection(target, timeout=2).close()\n"
        "            reached += 1\n"
        "        except OSError:\n"
        "            pass\n"
        "    try:\n"
        "        socket.getaddrinfo('pypi.org', 443)\n"
        "        reached += 1\n"
        "    except OSError:\n"
        "        pass\n"
        "    ifaces = [name for _, name in socket.if_nameindex()]\n"
        "    return {'report': {'reached': reached, 'non_loopback': len(set(ifaces) - {'lo'})}}\n"
    )
    out = sandbox.run("python", code)
    assert out.report == {"reached": 0, "non_loopback": 0}


def test_python_sees_only_its_own_processes(sandbox: Sandbox) -> None:
    code = (
        "import os\n"
        "def run(inputs, params):\n"
        "    pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "    cmds = ''.join(open(f'/proc/{p}/cmdline', 'rb').read().decode('latin-1')\n"
        "                   for p in pids)\n"
        "    return {'report': {'pids': len(pids), 'host': int('dockerd' in cmds\n"
        "                                                  or 'pytest' in cmds)}}\n"
    )
    out = sandbox.run("python", code)
    assert out.report is not None
    assert out.report["host"] == 0
    assert out.report["pids"] <= 2


def test_python_cannot_setuid_unshare_or_mount(sandbox: Sandbox) -> None:
    code = (
        "import ctypes, os\n"
        "def run(inputs, params):\n"
        "    libc = ctypes.CDLL(None, use_errno=True)\n"
        "    ok = 0\n"
        "    ok += libc.setuid(0) == 0\n"
        "    ok += libc.unshare(0x10000000) == 0  # CLONE_NEWUSER\n"
        "    ok += libc.unshare(0x00020000) == 0  # CLONE_NEWNS\n"
        "    ok += libc.mount(b'tmpfs', b'/tmp', b'tmpfs', 0, None) == 0\n"
        "    ok += libc.chroot(b'/tmp') == 0\n"
        "    return {'report': {'succeeded': ok, 'uid': os.getuid()}}\n"
    )
    out = sandbox.run("python", code)
    assert out.report == {"succeeded": 0, "uid": 10001}


def test_python_symlink_in_the_output_dir_is_refused(sandbox: Sandbox) -> None:
    code = (
        "import os\n"
        "def run(inputs, params):\n"
        "    os.symlink('/etc/passwd', '/out/report.json')\n"
        "    os._exit(0)\n"
    )
    out = sandbox.run("python", code)
    assert out.result.error_kind == "SANDBOX_VIOLATION", (out.result.error, out.log[-1500:])
    assert "symlink" in out.result.error


def test_python_fifo_in_the_output_dir_is_refused(sandbox: Sandbox) -> None:
    code = (
        "import os\ndef run(inputs, params):\n    os.mkfifo('/out/report.json')\n    os._exit(0)\n"
    )
    out = sandbox.run("python", code)
    assert out.result.error_kind == "SANDBOX_VIOLATION", (out.result.error, out.log[-1500:])


def test_python_reading_all_of_dev_urandom_is_stopped(sandbox: Sandbox) -> None:
    code = "def run(inputs, params):\n    open('/dev/urandom', 'rb').read()\n"
    out = sandbox.run("python", code, resources={"wall_s": 10})
    assert out.result.error_kind in ("MEMORY_LIMIT", "TIMEOUT")
