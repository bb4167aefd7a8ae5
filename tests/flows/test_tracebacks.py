"""Tracebacks leave what users read and stay for operators (issue 9, item 1): the filter over
log entries in each shape they come in, and the run log handler that splits them."""

from __future__ import annotations

import logging
from pathlib import Path

from flows.runlog import RunLogHandler
from flows.tracebacks import POINTER, has_traceback, scrub_entries, unexpected, user_text

BUILTIN = (
    "[data] Traceback (most recent call last):\n"
    '  File "/srv/runners/inprocess.py", line 86, in run\n'
    "    outputs = self._execute(node_ir, input_paths, output_dir, log)\n"
    "              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
    "KeyError: 'close'\n"
    "\n"
    "During handling of the above exception, another exception occurred:\n"
    "\n"
    "Traceback (most recent call last):\n"
    '  File "/srv/nodes/data.py", line 12, in read\n'
    "ValueError: no close column"
)
SANDBOX = [
    "[mine] hello from the node",
    "[mine] Traceback (most recent call last):",
    '[mine]   File "node.py", line 3, in run',
    "[mine]     return 1 / 0",
    "[mine]            ~~^~~",
    "[mine] ZeroDivisionError: division by zero",
    "[mine] alphaforge-sandbox: ZeroDivisionError: division by zero (line 3 of the code)",
]


def test_a_builtin_nodes_chained_traceback_becomes_one_pointer() -> None:
    shown, hidden = scrub_entries([BUILTIN, "[data] failed: no close column"])
    assert shown == [f"[data] {POINTER}", "[data] failed: no close column"]
    assert hidden[0] == "Traceback (most recent call last):"
    assert "ValueError: no close column" in hidden
    assert sum(line.startswith("Traceback") for line in hidden) == 2


def test_a_sandboxs_line_by_line_traceback_keeps_the_nodes_own_lines() -> None:
    shown, hidden = scrub_entries(SANDBOX)
    assert shown == [
        "[mine] hello from the node",
        f"[mine] {POINTER}",
        "[mine] alphaforge-sandbox: ZeroDivisionError: division by zero (line 3 of the code)",
    ]
    assert len(hidden) == 5 and hidden[-1] == "ZeroDivisionError: division by zero"


def test_interleaved_nodes_keep_their_own_state() -> None:
    shown, _ = scrub_entries(
        [
            "[a] Traceback (most recent call last):",
            "[b] computed in 0.1s",
            '[a]   File "x.py", line 1',
        ]
    )
    assert shown == [f"[a] {POINTER}", "[b] computed in 0.1s"]


def test_single_messages_and_reprs_holding_a_traceback() -> None:
    repr_line = (
        "Task failed: {'logs': ['Traceback (most recent call last):\\n  File \"/x.py\", line 86']}"
    )
    assert has_traceback(repr_line) and user_text(repr_line) == POINTER
    assert user_text("node 'data' failed: no such file") == "node 'data' failed: no such file"
    assert not has_traceback("File names are case-sensitive")
    sentence = unexpected("the node lab", KeyError("x"), "in the worker's log")
    assert sentence.startswith("AF790: the node lab stopped on an unexpected KeyError")
    assert "tell your operator" in sentence and "Traceback" not in sentence


def test_the_run_log_handler_writes_tracebacks_beside_the_log(tmp_path: Path) -> None:
    logger = logging.getLogger("test.runlog.split")
    logger.setLevel(logging.DEBUG)
    handler = RunLogHandler(tmp_path / "run.log")
    logger.addHandler(handler)
    try:
        logger.error(BUILTIN)
        failed = "Task run failed with state: Failed(message='x')"
        logger.error(failed, extra={"task_run_name": "data"})
        try:
            {}["missing"]
        except KeyError:
            logger.exception("[flow] the run body failed")
        logger.info("[data] failed: no close column")
    finally:
        logger.removeHandler(handler)
        handler.close()
    run_log = (tmp_path / "run.log").read_text()
    assert "Traceback" not in run_log and 'File "' not in run_log
    assert "Task run failed" not in run_log
    assert f"[data] {POINTER}" in run_log and "[flow] the run body failed" in run_log
    assert run_log.rstrip().endswith("[data] failed: no close column")
    details = (tmp_path / "operator-details.log").read_text()
    assert details.count("Traceback (most recent call last):") == 3
    assert "KeyError: 'missing'" in details and "Task run failed with state" in details
