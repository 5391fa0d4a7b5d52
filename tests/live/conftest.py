"""End-to-end tests on the real LiveKit server: one `livekit-server` on loopback for the whole
run (from config/livekit.yaml, on free ports), and per test a stand-in model server and
workers, each in its own process, and callers on LiveKit's rtc client."""

from __future__ import annotations

import fcntl
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from pathlib import Path

import pytest

from tests.live.harness import ROOT
from tests.support.caller import Caller, token
from tests.support.processes import ModelServer, Worker, clean_env, free_port
from voxkeep.core.errors import VoxkeepError
from voxkeep.local.cluster import NODE_CONFIGS, LocalCluster
from voxkeep.local.livekit_server import LocalServer, find_binary, pinned_version
from voxkeep.local.redis_server import LocalRedis
from voxkeep.store import Store

BUILD_WAIT_S = 900.0
"""How long the first end-to-end test waits for scripts/livekit-server, which scripts/test
runs in the background while the tests that need no LiveKit server go first."""


@pytest.fixture(scope="session")
def livekit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    binary = _built_binary()
    folder = tmp_path_factory.mktemp("livekit")
    with (folder / "server.log").open("wb") as log:
        server = LocalServer(
            binary,
            ROOT / "config" / "livekit.yaml",
            port=free_port(),
            udp_port=free_port(socket.SOCK_DGRAM),
            log=log,
        )
        server.start()
        yield server
        server.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """LiveKit's distributed mode: Redis and the two nodes of `config/`, on free ports, for this
    test alone (a test may kill a node)."""
    binary = _built_binary()
    with (tmp_path / "cluster.log").open("wb") as log:
        nodes = [
            LocalServer(
                binary,
                ROOT / "config" / name,
                port=free_port(),
                udp_port=free_port(socket.SOCK_DGRAM),
                log=log,
            )  # fmt: skip
            for name in NODE_CONFIGS
        ]
        running = LocalCluster(LocalRedis(port=free_port(), log=log), nodes)
        running.start()
        yield running
        running.stop()


def _built_binary() -> Path:
    """The pinned `livekit-server`, once a build under way (scripts/livekit-server) is done."""
    version = pinned_version(ROOT / "config")
    deadline = time.monotonic() + BUILD_WAIT_S
    while True:
        try:
            return find_binary(ROOT, version)
        except VoxkeepError:
            if not _building() or time.monotonic() > deadline:
                raise
        time.sleep(1.0)


def _building() -> bool:
    """Whether scripts/livekit-server is running: it holds this lock while it does."""
    try:
        with (ROOT / ".tools" / "livekit-build.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # no .tools: nothing was ever built here
        return False
    return False


@pytest.fixture
def room() -> str:
    """A room of this test's own."""
    return f"room-{uuid.uuid4().hex[:10]}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[OUTCOME] = report
    return report


OUTCOME = pytest.StashKey[pytest.TestReport]()


@pytest.fixture
async def model_server(request: pytest.FixtureRequest) -> AsyncIterator[ModelServer]:
    """The stand-in model server; when the test fails, what it heard and was asked (printed
    with the failure: an agent that never answered is told apart from a clip not recognized)."""
    server = ModelServer()
    await server.start()
    yield server
    outcome = request.node.stash.get(OUTCOME, None)
    if outcome is not None and outcome.failed:
        for seen in await server.requests():
            body = seen["body"] if "transcriptions" in seen["path"] else "…"
            print(f"model server: {seen['path']} {body}")
    await server.aclose()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/voxkeep.db"


@pytest.fixture
def reader(store: Store) -> Store:
    """The test's own view of the store the workers write (migrated, as `scripts/run` does)."""
    return store


@pytest.fixture
def operator_env(livekit_server: LocalServer, db_url: str) -> dict[str, str]:
    """What an operator's `voxkeepctl` runs with: the LiveKit server's URL and key, the store."""
    return clean_env(
        LIVEKIT_URL=livekit_server.url,
        LIVEKIT_API_KEY=livekit_server.api_key,
        LIVEKIT_API_SECRET=livekit_server.api_secret,
        VOXKEEP_DB_URL=db_url,
    )


StartWorker = Callable[..., Awaitable[Worker]]


def worker_env(
    server: LocalServer, model: ModelServer, db_url: str, folder: Path, **settings: str
) -> dict[str, str]:
    """The environment a worker is started with: everything it needs, and nothing of ours;
    `settings` over the defaults."""
    defaults = {
        "VOXKEEP_LOAD_THRESHOLD": "inf",  # a loaded test machine still takes the call
        "VOXKEEP_CONTEXT_LOAD_TIMEOUT_S": "30",  # ...and resumes it however slowly the store is
        "VOXKEEP_IDLE_PROCESSES": "1",
        # a caller who leaves is gone at once, as the tests of a call's end expect (the rejoin
        # tests set their own grace)
        "VOXKEEP_REJOIN_GRACE_S": "0",
        "VOXKEEP_INSTRUCTIONS": "You are a helpful travel assistant.",
    }
    return clean_env(
        LIVEKIT_URL=server.url,
        LIVEKIT_API_KEY=server.api_key,
        LIVEKIT_API_SECRET=server.api_secret,
        OPENAI_BASE_URL=model.base_url,
        OPENAI_API_KEY="test-key",
        VOXKEEP_DB_URL=db_url,
        VOXKEEP_JOURNAL_DIR=str(folder / "journal"),
        VOXKEEP_HTTP_HOST="127.0.0.1",
        VOXKEEP_HTTP_PORT=str(free_port()),
        **{**defaults, **settings},
    )


@pytest.fixture
async def start_worker(
    livekit_server: LocalServer,
    model_server: ModelServer,
    db_url: str,
    reader: Store,
    tmp_path: Path,
) -> AsyncIterator[StartWorker]:
    started: list[Worker] = []

    async def start(
        *, db: str | None = None, command: str = "start", wrapper: list[str] | None = None,
        program: list[str] | None = None, server: LocalServer | None = None, **settings: str,
    ) -> Worker:  # fmt: skip
        """A worker registered with the server (or `server`, a node of a cluster): ours, or
        `program` run by Python, a worker of the user's; `settings` are VOXKEEP_* variables by
        name."""
        folder = tmp_path / f"worker{len(started) + 1}"
        folder.mkdir()
        env = worker_env(server or livekit_server, model_server, db or db_url, folder, **settings)
        worker = Worker(env, folder / "worker.log", command=command, wrapper=wrapper or [])
        if program is not None:
            worker.program, worker.ready = program, "registered worker"
        started.append(worker)
        await worker.start()
        return worker

    yield start
    for worker in started:
        await worker.stop()


Join = Callable[..., Awaitable[Caller]]


@pytest.fixture
async def join(livekit_server: LocalServer, room: str) -> AsyncIterator[Join]:
    callers: list[Caller] = []

    async def join_as(
        identity: str = "alice",
        *,
        attributes: dict[str, str] | None = None,
        jwt: str | None = None,
        microphone: bool = True,
        in_room: str | None = None,
        url: str | None = None,
    ) -> Caller:
        """A caller in the test's room (or `in_room`), with a token of their own (or `jwt`,
        for the server at `url`)."""
        jwt = jwt or token(
            livekit_server.api_key, livekit_server.api_secret, in_room or room, identity,
            attributes,
        )  # fmt: skip
        caller = Caller(url or livekit_server.url, jwt, identity)
        callers.append(caller)
        await caller.join(microphone=microphone)
        return caller

    yield join_as
    for caller in callers:
        await caller.leave()
