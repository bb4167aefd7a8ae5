"""A Prefect process worker that drains on SIGTERM: ``python -m deployments.drainworker``.

Prefect's own ``prefect worker start`` turns SIGTERM into an interrupt that cancels its task
group at once: the flow-run subprocesses it started die with it and their runs stay Running
until something notices (tested: a run with 15 s to go never completed). This module runs the
same :class:`prefect.workers.process.ProcessWorker`, with the same settings, but a stop is a
drain:

1. the first SIGTERM (or SIGINT) stops the worker taking flow runs: its poll returns nothing
   (the heartbeat, the cancellation observer and the runs it started carry on, so a run
   cancelled during the drain is still cancelled properly);
2. it waits until none of its flow-run subprocesses (its child processes) is left, for at most
   ``--drain-s`` seconds (``ALPHAFORGE_WORKER_DRAIN_S``, 60);
3. then it stops as Prefect's worker stops: what is still running is ended with the worker.

A flow run whose process ended while it was Cancelling is recorded Cancelled when its process
has ended (:meth:`DrainingProcessWorker.run`): Prefect's cancellation observer does that only
when it heard the Cancelling event while the process ran, and a cancel that lands between the
worker taking the run and its engine starting (the engine finds itself Cancelling, runs nothing
and exits) was left Cancelling until the server's timeout, five minutes later.

A second signal during the drain skips the wait. The worker prints ``Worker '<name>'
started!`` / ``stopped!`` like Prefect's CLI (what :class:`deployments.stack.Worker` waits on).

``--type docker`` runs prefect-docker's :class:`~prefect_docker.worker.DockerWorker` the same
way (a Docker work pool, :mod:`deployments.dockerpool`): its flow runs are containers, not
children, so the drain waits for the flow runs it is handling, from their submission to the
end of the worker's bookkeeping after the container exited (a non-zero exit is reported
Crashed then). Its containers do not depend on the worker: a drain that ran out leaves a
running container running (its flow run's engine records its own end in Prefect, its record
and MLflow) and the worker exits at once, 0, saying so: prefect-docker watches a container
with blocking Docker calls that a cancel cannot interrupt, so the process ends without
waiting for those threads (:data:`STOP_WAIT_S` after the worker's cancel at most).

Both workers count a flow run being submitted (taken from the pool, its infrastructure not
started yet) as running, and a poll that was on its way when the signal came submits nothing
(:meth:`DrainingProcessWorker._get_scheduled_flow_runs`): the drain cannot end while a run it
took is starting, and a run it did not take stays Scheduled for another worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect.workers.process import ProcessWorker

__all__ = ["DrainingProcessWorker", "child_pids", "docker_worker_class", "main"]

WORKER_TYPES = ("process", "docker")
# how long a Docker worker whose drain ran out waits for its worker loop to end before its
# process exits regardless (its container watches block in threads)
STOP_WAIT_S = 10.0


def child_pids(pid: int | None = None) -> list[int]:
    """The live child processes of ``pid`` (this process by default), from /proc."""
    pid = pid or os.getpid()
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return [p for p in found if not _zombie(p)]


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


with warnings.catch_warnings():
    # Prefect registers worker classes by type: this one takes "process" over in this
    # process (it is the process worker), which Prefect warns about
    warnings.simplefilter("ignore", UserWarning)

    class DrainingProcessWorker(ProcessWorker):
        """A process worker that can stop taking flow runs while the ones it runs finish."""

        draining = False

        async def get_and_submit_flow_runs(self) -> list[Any]:
            """Nothing while draining (the poll still counts as one), else Prefect's poll."""
            if self.draining:
                self._last_polled_time = datetime.now(UTC)
                return []
            return list(await super().get_and_submit_flow_runs())

        async def _get_scheduled_flow_runs(self) -> list[Any]:
            """Prefect's query; nothing to submit if the drain began while it was asked."""
            found = list(await super()._get_scheduled_flow_runs())
            return [] if self.draining else found

        def running_runs(self) -> int:
            """Its flow-run processes, or the flow runs it is submitting, whichever is more."""
            return max(len(child_pids()), len(_submitting(self)))

        async def run(self, flow_run: Any, configuration: Any, task_status: Any = None) -> Any:
            """Prefect's run (the flow-run process, until it exits); then a flow run still
            Cancelling is Cancelled: its process is gone, nothing else would end it."""
            result = await super().run(flow_run, configuration, task_status)
            try:
                await self._end_cancelling(flow_run)
            except Exception as exc:  # the run's outcome stands; its state stays as it is
                self._logger.warning(f"Could not end Cancelling flow run {flow_run.id}: {exc}")
            return result

        async def _end_cancelling(self, flow_run: Any) -> None:
            current = await self.client.read_flow_run(flow_run.id)
            if current.state is not None and current.state.is_cancelling():
                await self._mark_flow_run_as_cancelled(
                    current,
                    state_updates={
                        "message": "Flow run cancelled: its process ended while Cancelling."
                    },
                )
                self.get_flow_run_logger(current).info(
                    f"Cancelled flow run '{current.id}': its process ended while Cancelling"
                )


def docker_worker_class() -> type[Any]:
    """prefect-docker's worker, draining like :class:`DrainingProcessWorker`; it counts the
    flow runs it is submitting or handling (each until its container exited and the worker
    reported the exit)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # it takes the "docker" type over
        from prefect_docker.worker import DockerWorker

        class DrainingDockerWorker(DockerWorker):  # type: ignore[misc]
            draining = False

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                # the flow runs between submission and the end of the worker's bookkeeping
                self.handling: set[Any] = set()

            async def get_and_submit_flow_runs(self) -> list[Any]:
                if self.draining:
                    self._last_polled_time = datetime.now(UTC)
                    return []
                return list(await super().get_and_submit_flow_runs())

            async def _get_scheduled_flow_runs(self) -> list[Any]:
                found = list(await super()._get_scheduled_flow_runs())
                return [] if self.draining else found

            async def _submit_run_and_capture_errors(
                self, flow_run: Any, task_status: Any = None
            ) -> Any:
                # the container's start, its watch until it exits, then the exit's report
                self.handling.add(flow_run.id)
                try:
                    return await super()._submit_run_and_capture_errors(flow_run, task_status)
                finally:
                    self.handling.discard(flow_run.id)

            def running_runs(self) -> int:
                return len(self.handling | _submitting(self))

    return DrainingDockerWorker


def _submitting(worker: Any) -> set[Any]:
    """The flow runs ``worker`` took from the pool and is submitting (Prefect's own set)."""
    return set(getattr(worker, "_submitting_flow_run_ids", ()))


async def serve_worker(
    pool: str,
    name: str | None,
    limit: int | None,
    drain_s: float,
    healthcheck: bool = False,
    worker_type: str = "process",
) -> None:
    """Run the worker until a signal, then drain (see the module doc)."""
    from prefect.settings import PREFECT_WORKER_HEARTBEAT_SECONDS, PREFECT_WORKER_PREFETCH_SECONDS

    cls = DrainingProcessWorker if worker_type == "process" else docker_worker_class()
    worker = cls(
        work_pool_name=pool,
        name=name,
        limit=limit,
        prefetch_seconds=PREFECT_WORKER_PREFETCH_SECONDS.value(),
        heartbeat_interval_seconds=int(PREFECT_WORKER_HEARTBEAT_SECONDS.value()),
    )
    signals = asyncio.Queue[int]()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, signals.put_nowait, sig)
    running = asyncio.create_task(
        worker.start(with_healthcheck=healthcheck, printer=lambda text: print(text, flush=True))
    )
    first = asyncio.create_task(signals.get())
    await asyncio.wait({running, first}, return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        first.cancel()
        running.result()
        return
    worker.draining = True
    running_runs = worker.running_runs
    busy = running_runs()
    print(
        f"Received {signal.Signals(first.result()).name}: worker {worker.name!r} takes no new "
        f"flow runs; waiting up to {drain_s:g} s for {busy} running",
        flush=True,
    )
    deadline = time.monotonic() + drain_s
    while running_runs() and time.monotonic() < deadline and signals.empty():
        await asyncio.sleep(0.25)
    left = running_runs()
    if left and worker_type == "docker":
        print(
            f"Drain over: leaving {left} flow-run container(s) running; each records its own end",
            flush=True,
        )
    elif left:
        print(f"Drain over: ending {left} flow run(s) still running", flush=True)
    else:
        print("Drained: no flow run left", flush=True)
    running.cancel()
    if left and worker_type == "docker":
        await asyncio.wait({running}, timeout=STOP_WAIT_S)
        print(f"Worker {worker.name!r} stopped!", flush=True)
        _exit_now()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    print(f"Worker {worker.name!r} stopped!", flush=True)


def _exit_now() -> None:
    """End the process with 0 without waiting for its threads (blocked container watches),
    its log handlers flushed first (Prefect's API log handler sends what it holds)."""
    import logging

    try:
        logging.shutdown()
    finally:
        os._exit(0)


def main(argv: list[str] | None = None) -> None:
    """``python -m deployments.drainworker --pool P [--type process|docker] [--name N]
    [--limit L] [--drain-s S] [--with-healthcheck]``."""
    parser = argparse.ArgumentParser(prog="python -m deployments.drainworker")
    parser.add_argument("--pool", required=True)
    parser.add_argument(
        "--type",
        dest="worker_type",
        choices=WORKER_TYPES,
        default="process",
        help="the work pool's type: process (subprocesses) or docker (containers)",
    )
    parser.add_argument("--name")
    parser.add_argument("--limit", type=int)
    parser.add_argument(
        "--drain-s",
        type=float,
        default=float(os.environ.get("ALPHAFORGE_WORKER_DRAIN_S", "60")),
        help="seconds running flow runs may take to finish after SIGTERM",
    )
    parser.add_argument(
        "--with-healthcheck",
        action="store_true",
        help="serve Prefect's worker health check (PREFECT_WORKER_WEBSERVER_PORT)",
    )
    args = parser.parse_args(argv)
    # as `prefect worker start` does (prefect.cli._app): Prefect's logging configuration, so
    # the worker's own lines (which flow run it submits, aborts, ends) reach its log
    from prefect.logging.configuration import setup_logging

    setup_logging()
    asyncio.run(
        serve_worker(
            args.pool, args.name, args.limit, args.drain_s, args.with_healthcheck, args.worker_type
        )
    )


if __name__ == "__main__":  # pragma: no cover
    main()
