"""A worker's background work (docs/embedding.md#the-background-work): the sweeper (lost calls,
empty chats, retention, expired events), webhook delivery and, with `VOXKEEP_METRICS_PORT`, the
metrics server, in the main process of a LiveKit `AgentServer`, ours or a user's. One call adds
them:

    server = AgentServer(setup_fnc=prewarm)
    run_background(server)

With `VOXKEEP_BACKGROUND=off` the sweeper and delivery run elsewhere (another worker,
`voxkeepctl background`), and the worker says so in one line at start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from livekit.agents import AgentServer
from prometheus_client import values

from voxkeep.core.settings import Settings, load_settings
from voxkeep.jobs import continuation, scrape, sweeper, webhooks

log = structlog.get_logger(__name__)

SWEEPER_TASK = "voxkeep.jobs.sweeper"


def run_background(server: AgentServer, settings: Settings | None = None) -> None:
    """Start the background work in `server`'s main process as it starts, with
    `settings` (default: the environment's, read then); or log that they run elsewhere."""
    tasks: list[asyncio.Task[None]] = []  # a reference, so the tasks are never collected

    def start() -> None:
        tasks.extend(start_tasks(settings or load_settings()))

    server.on("worker_started", start)


def start_tasks(settings: Settings) -> list[asyncio.Task[None]]:
    """The background tasks the settings ask for, started on the running loop, and one line
    saying what runs."""
    tasks = []
    if settings.metrics_port is not None:
        token = settings.metrics_token.get_secret_value()
        serving = scrape.serve(settings.http_host, settings.metrics_port, token)
        tasks.append(asyncio.create_task(serving, name=scrape.TASK))
    if settings.continue_after_s is not None:  # in every worker, whatever VOXKEEP_BACKGROUND
        tasks.append(asyncio.create_task(continuation.run(settings), name=continuation.TASK))
    return tasks + _jobs(settings)


def _jobs(settings: Settings) -> list[asyncio.Task[None]]:
    if not settings.background:
        log.info(
            "background.elsewhere",
            note="VOXKEEP_BACKGROUND=off: the sweeper, retention and webhook delivery run in "
            "another process",
        )
        return []
    work: dict[str, Callable[[Settings], Coroutine[Any, Any, None]]] = {SWEEPER_TASK: sweeper.run}
    if settings.webhooks:
        work[webhooks.TASK] = webhooks.run
    log.info(
        "background.started", sweeper=True, retention_days=settings.retention_days,
        webhook_receivers=len(settings.webhooks), metrics_every_process=every_process(),
    )  # fmt: skip
    return [asyncio.create_task(run(settings), name=name) for name, run in work.items()]


def every_process() -> bool:
    """Whether this process collects metrics in prometheus_client's multiprocess mode, so that
    one scrape adds up the job processes' values and this one's (docs/metrics.md)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))
