"""The worker's `/metrics` (docs/metrics.md), served from its main process: the values of every
process of the worker, ours and LiveKit's, in one scrape.

LiveKit runs each call in a job process of its own, and prometheus_client's multiprocess mode
gives each process a file of values in a shared folder. prometheus_client's collector reads
every file it lists and fails the scrape on one it cannot read; LiveKit's own metrics server
then answers 500. Two moments make such a file, and both are ordinary: a process that has just
created its file has not sized it yet (an empty file), and the worker empties the folder as it
starts. Here each file is read once, into a copy the collector then adds up: a file with nothing
in it yet, or gone by the time it is read, is left out of that scrape.
"""

from __future__ import annotations

import asyncio
import glob
import hmac
import mmap
import os
import struct
import tempfile
from collections.abc import Iterable
from pathlib import Path

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

from voxkeep.core.hosts import LOOPBACK_NAMES, addressed_to_loopback

log = structlog.get_logger(__name__)

TASK = "voxkeep.jobs.metrics"
HEADER = 8  # bytes: a value file's used length and padding, written when the file is sized


class SettledFiles(Collector):
    """prometheus_client's multiprocess collector over a copy of the folder taken file by file:
    each file read once, a file not sized yet or gone by the time it is read left out (the
    module's docstring)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def collect(self) -> Iterable[Metric]:
        with tempfile.TemporaryDirectory(prefix="voxkeep-scrape-") as copy:
            files = []
            for path in glob.glob(os.path.join(self.folder, "*.db")):
                data = _settled(path)
                if data is not None:
                    files.append(os.path.join(copy, os.path.basename(path)))
                    Path(files[-1]).write_bytes(data)
            return list(MultiProcessCollector.merge(files, accumulate=True))  # type: ignore[no-untyped-call]


def _settled(path: str) -> bytes | None:
    """A value file's used bytes, read as prometheus_client reads them (its used length first),
    or None for a file that is gone or has not been sized yet."""
    try:
        with open(path, "rb") as file:
            data = file.read(mmap.PAGESIZE)
            if len(data) < HEADER:
                return None
            (used,) = struct.unpack_from("i", data)
            return data + file.read(max(0, used - len(data)))
    except FileNotFoundError:
        return None


def registry() -> CollectorRegistry:
    """What a scrape reads: every process's files in multiprocess mode, or this process's own
    values without it (a user's server that never set PROMETHEUS_MULTIPROC_DIR)."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return REGISTRY
    collected = CollectorRegistry(auto_describe=True)
    collected.register(SettledFiles(folder))
    return collected


async def _metrics(_: web.Request) -> web.Response:
    body = await asyncio.to_thread(generate_latest, registry())
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _asker_check(host: str, token: str) -> Middleware:
    """Who may scrape. With a token, only a bearer of it (Prometheus' `authorization`); on a
    loopback address, only a request addressed to this machine by name (not a page whose domain
    resolves to 127.0.0.1). A server on every interface is for a scraper on another host, whose
    name for it is not known here: give it a token."""
    expected = f"Bearer {token}".encode()
    loopback = host in LOOPBACK_NAMES

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if loopback and not addressed_to_loopback(request.host):
            return web.Response(status=421, text="this server answers to 127.0.0.1 only\n")
        given = request.headers.get("Authorization", "").encode()
        if token and not hmac.compare_digest(given, expected):
            return web.Response(
                status=401,
                text="a bearer token is needed\n",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await handler(request)

    return check


async def serve(host: str, port: int, token: str = "") -> None:
    """Serve `/metrics` on `host:port` until cancelled; `token`, if any, is asked of scrapers."""
    app = web.Application(middlewares=[_asker_check(host, token)])
    app.router.add_get("/metrics", _metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host or None, port).start()
        log.info("metrics.serving", port=port)
        await asyncio.Event().wait()
    except OSError as exc:  # the port is taken: calls go on without metrics
        log.error("metrics.unavailable", port=port, error=type(exc).__name__, errno=exc.errno)
    finally:
        await runner.cleanup()
