"""The bar sources' one error: what failed, at which URL, for which symbol(s)."""

from __future__ import annotations

from nodes.errors import AlphaForgeError

__all__ = ["SourceError", "SourceUnavailable"]


class SourceError(AlphaForgeError):
    """A source cannot deliver bars: the exchange refused the request or answered with an error
    payload (the message quotes its code and text), or stayed unreachable past the retries.

    Bad *settings* (an unknown interval, no symbols) are ``ValueError`` at construction.
    """

    code = "AF520"


class SourceUnavailable(SourceError):
    """A transient failure (network, HTTP 429/418/5xx): worth another attempt after a pause."""
