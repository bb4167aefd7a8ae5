"""The error of a stream pipeline that cannot start or run (AF510)."""

from __future__ import annotations

from nodes.errors import AlphaForgeError

__all__ = ["StreamError"]


class StreamError(AlphaForgeError):
    """A stream pipeline cannot start or go on: the message says what and where (the source,
    the warm-up's seam, a port that is not per bar, a trigger naming no running pipeline)."""

    code = "AF510"
