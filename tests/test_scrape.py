"""The worker's `/metrics` (docs/metrics.md): one scrape adds up what every process wrote to the
shared folder, and answers 200 while job processes create their files and the folder is emptied
under it (LiveKit's own metrics server answers 500 then)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.processes import free_port
from tests.support.scrape import scrape, value
from voxkeep.jobs import scrape as metrics_server

# a process of the worker: its values go to the folder, as a job process's do
WRITER = """
from prometheus_client import Counter, Gauge
Counter("voxkeep_test_calls", "calls", ["kind"]).labels(kind="real").inc(3)
Gauge("voxkeep_test_backlog", "backlog", multiprocess_mode="livesum").set(2)
"""
# processes coming and going as fast as they can: each creates its files, writes a value and
# has them removed, in a loop, until the test ends
CHURN = """
import itertools, os, sys
from prometheus_client.mmap_dict import MmapedDict
folder = sys.argv[1]
for n in itertools.count():
    path = os.path.join(folder, f"counter_{100000 + n}.db")
    values = MmapedDict(path)
    values.write_value('["voxkeep_test_churn", "voxkeep_test_churn_total", {}, "churn"]', 1.0, 0)
    values.close()
    os.unlink(path)
"""


def run(code: str, folder: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "metrics"
    folder.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    assert run(WRITER, folder).wait(timeout=30) == 0
    return folder


@contextlib.asynccontextmanager
async def serving(token: str = "") -> AsyncIterator[int]:
    """The metrics server on a free loopback port, listening."""
    port = free_port()
    server = asyncio.create_task(metrics_server.serve("127.0.0.1", port, token))
    for _ in range(500):  # until it listens
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async with serving() as port:
        yield port


async def status_of(port: int, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics", headers=headers) as response,
    ):
        return response.status


@contextlib.contextmanager
def churning(folder: Path) -> Iterator[None]:
    churn = run(CHURN, folder, str(folder))
    try:
        yield
    finally:
        churn.kill()
        churn.wait(timeout=30)


async def test_a_scrape_adds_up_the_values_other_processes_wrote(folder: Path, port: int) -> None:
    samples = await scrape(port)
    assert value(samples, "voxkeep_test_calls_total", kind="real") == 3
    assert value(samples, "voxkeep_test_backlog") == 2


async def test_a_file_a_process_has_created_but_not_sized_leaves_the_rest_of_the_scrape(
    folder: Path, port: int
) -> None:
    (folder / "counter_4242.db").touch()  # between a new process's open and its truncate
    samples = await scrape(port)
    assert value(samples, "voxkeep_test_calls_total", kind="real") == 3


async def test_scrapes_answer_while_processes_create_and_remove_their_files(
    folder: Path, port: int
) -> None:
    with churning(folder):
        for _ in range(100):
            samples = await scrape(port)  # 200 every time
            assert value(samples, "voxkeep_test_calls_total", kind="real") == 3
            assert value(samples, "voxkeep_test_churn_total") in (0, 1)


async def test_without_a_shared_folder_it_serves_this_processs_own_values(
    port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)  # a user's server, say
    from voxkeep.core.metrics import CONTROL_REQUESTS

    CONTROL_REQUESTS.labels(type="ping", code="ok").inc()
    samples = await scrape(port)
    assert value(samples, "voxkeep_control_requests_total", type="ping", code="ok") >= 1


async def test_a_taken_port_is_logged_and_leaves_the_worker_running(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    await asyncio.wait_for(metrics_server.serve("127.0.0.1", port), timeout=30)
    assert "metrics.unavailable" in [r.msg for r in caplog.records]


async def test_on_loopback_only_a_request_addressed_to_this_machine_by_name_is_answered(
    folder: Path, port: int
) -> None:
    """A page on another domain that resolves to 127.0.0.1 sends its own name as `Host`."""
    assert await status_of(port, {"Host": "attacker.example"}) == 421
    assert await status_of(port, {"Host": f"attacker.example:{port}"}) == 421
    assert await status_of(port, {"Host": f"localhost:{port}"}) == 200


async def test_with_a_token_only_its_bearer_scrapes(folder: Path) -> None:
    token = "scrape-token-0123456789abcdef"
    async with serving(token) as port:
        assert await status_of(port, {}) == 401
        assert await status_of(port, {"Authorization": "Bearer not-the-token"}) == 401
        assert await status_of(port, {"Authorization": token}) == 401  # (the scheme is asked)
        assert await status_of(port, {"Authorization": f"Bearer {token}"}) == 200
        samples = await scrape(port, token=token)
        assert value(samples, "voxkeep_test_calls_total", kind="real") == 3
