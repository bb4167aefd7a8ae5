"""Python tracebacks are for operators, never for users.

A node that fails leaves its traceback in the runner's log lines (a built-in node's as one
multi-line entry, a sandboxed node's stderr one line per entry), and Prefect may log an
exception with its traceback. :class:`TracebackFilter` finds the traceback blocks in such lines
— ``Traceback (most recent call last):``, the indented frames, the exception line, chained
``During handling of...`` sections — so the run log a user reads keeps everything else and one
sentence in place of each block, while the block itself goes to the run directory's
``operator-details.log`` (:data:`OPERATOR_LOG`), which no API endpoint serves.
:func:`user_text` does the same for a single message (a run's error).
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable

from nodes.errors import AlphaForgeError

__all__ = [
    "LAB_POINTER",
    "OPERATOR_LOG",
    "POINTER",
    "TracebackFilter",
    "UnexpectedError",
    "has_traceback",
    "scrub_entries",
    "unexpected",
    "user_text",
]

OPERATOR_LOG = "operator-details.log"
POINTER = (
    f"(the Python traceback of this error is kept for operators in the run's {OPERATOR_LOG}; "
    "the message above or below says what went wrong)"
)
LAB_POINTER = (
    "(the Python traceback of this error is kept for operators in the worker's log; the message "
    "above or below says what went wrong)"
)
_START = "Traceback (most recent call last):"
_CHAIN = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
_FRAME = re.compile(r'^\s*File "[^"]*", line \d+')
_INLINE_FRAME = re.compile(r'File \\?"[^"\\]*\\?", line \d+')


def has_traceback(text: str) -> bool:
    """Whether ``text`` holds a traceback header or a ``File "...", line N`` frame."""
    return _START in text or _INLINE_FRAME.search(text) is not None


class TracebackFilter:
    """Splits lines into what a user sees and the traceback blocks operators keep.

    Lines are fed one at a time with a ``key`` (the node they belong to): a block that starts in
    one entry may continue in the next entries of the same node (a sandbox's stderr). ``feed``
    says, per physical line, ``"show"``, ``"start"`` (the first line of a block: show a pointer
    instead) or ``"hide"`` (the rest of a block).
    """

    def __init__(self, pointer: str = POINTER) -> None:
        self._state: dict[Hashable, str] = {}
        self.pointer = pointer

    def feed(self, key: Hashable, line: str) -> str:
        """Classify one physical line of ``key``'s output."""
        state = self._state.get(key, "text")
        bare = line.strip()
        if bare.startswith(_START) or bare.startswith("Exception Group Traceback"):
            self._state[key] = "frames"
            return "hide" if state == "chain" else "start"
        if state == "frames":
            if not bare or line[:1] in (" ", "\t", "|", "+"):
                return "hide"
            self._state[key] = "raised"  # the exception line ends the frames
            return "hide"
        if state == "chain":
            if not bare or bare in _CHAIN:
                return "hide"
            self._state[key] = "text"
            return "show"
        if state == "raised":
            if bare in _CHAIN:
                self._state[key] = "chain"
                return "hide"
            if not bare:  # between a chained exception and its "During handling..." line
                return "hide"
            if bare and line[:1] in (" ", "\t"):  # a multi-line exception message
                return "hide"
            self._state[key] = "text"
        if _FRAME.match(line) or _START in line or _INLINE_FRAME.search(line):
            # a frame without its header (a warning's stack), or a traceback inside a repr
            return "start"
        return "show"

    def split(self, key: Hashable, text: str) -> tuple[str | None, list[str]]:
        """``text`` (one log entry, maybe several lines) as a user should see it — None when
        nothing of it is left — and the lines hidden from it."""
        shown: list[str] = []
        hidden: list[str] = []
        for line in text.split("\n"):
            verdict = self.feed(key, line)
            if verdict == "show":
                shown.append(line)
                continue
            hidden.append(line)
            if verdict == "start" and self.pointer not in shown:
                shown.append(self.pointer)
        return ("\n".join(shown) if shown else None), hidden


def user_text(text: str, *, key: Hashable = None) -> str:
    """``text`` with every traceback block replaced by :data:`POINTER` (a run's error, a
    Prefect state message)."""
    if not has_traceback(text):
        return text
    shown, _ = TracebackFilter().split(key, text)
    return shown or POINTER


_ENTRY_TAG = re.compile(r"^\[([^\]\s]{1,100})\] ?")


def scrub_entries(entries: Iterable[str], pointer: str = POINTER) -> tuple[list[str], list[str]]:
    """Log entries (``[node] text``, maybe multi-line) as users should see them, and the
    traceback lines taken out of them (for operators)."""
    tb_filter = TracebackFilter(pointer)
    shown: list[str] = []
    hidden: list[str] = []
    for entry in entries:
        tag = _ENTRY_TAG.match(entry)
        key = tag.group(1) if tag else None
        text, removed = tb_filter.split(key, entry[tag.end() :] if tag else entry)
        hidden.extend(removed)
        if text is not None:
            shown.append(f"[{key}] {text}" if tag else text)
    return shown, hidden


class UnexpectedError(AlphaForgeError):
    """Something failed that no check foresaw (a bug): users get a sentence, operators the
    traceback."""

    code = "AF790"


def unexpected(what: str, exc: BaseException, where: str) -> str:
    """The sentence users get for an unexpected exception ``exc`` while doing ``what``; the
    traceback is kept ``where`` (say, "in the worker's log")."""
    return (
        f"{UnexpectedError.code}: {what} stopped on an unexpected {type(exc).__name__} (a bug, "
        f"not a mistake of yours); its Python traceback is kept for operators {where}. Try "
        "again, and if it happens again, tell your operator."
    )
