"""Stream pipelines: an ``.af`` pipeline's ``stream { ... }`` block run as a service.

docs/stream.md has the syntax and the semantics.

``service`` runs them (:class:`StreamService`, :class:`StreamPipeline`); ``sources`` builds the
block's bar source; ``warmup`` says how many bars of history and checks them for gaps;
``frame`` is the bounded trailing window of bars; ``graph`` evaluates the pipeline on it and
picks the new rows; ``sinks`` delivers events (CSV, PostgreSQL, webhook, Prefect event), each
behind its own worker; ``events`` is the emitted unit.
"""

from live.stream.errors import StreamError
from live.stream.events import StreamEvent
from live.stream.service import MAX_CHAIN_DEPTH, StreamPipeline, StreamService, load_pipeline

__all__ = [
    "MAX_CHAIN_DEPTH",
    "StreamError",
    "StreamEvent",
    "StreamPipeline",
    "StreamService",
    "load_pipeline",
]
