"""The worker's image (docs/operations.md#the-image), built and run: `scripts/image` builds it with
podman from a base made by debootstrap from Debian's own archive (no container registry is
needed), and the container runs as its own user with no dev tools, answers a real caller on the
local LiveKit server and stores what was said, serves the console's pages, and backs up a real
PostgreSQL database with the pg_dump it carries.

podman runs containers here with runc: crun cannot set the container's RLIMIT_NPROC on this
machine ("setrlimit `RLIMIT_NPROC`: Operation not permitted").
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import new_database
from tests.live.conftest import Join
from tests.live.harness import eventually
from tests.pg import PgServer
from tests.support.caller import wait_until
from tests.support.once import once
from tests.support.processes import ModelServer, free_port
from voxkeep.local.livekit_server import LocalServer
from voxkeep.sim.speech import Voice
from voxkeep.store import ANY_OWNER, open_store

ROOT = Path(__file__).resolve().parents[2]
TAG = "localhost/voxkeep:test"
ENGINE = ["podman", "--runtime", "runc"]
USER_ID = 10001
MAX_PROCESSES = 4096  # (some sandboxes refuse more, whatever their own limit says)
BUILD_TIMEOUT_S = 1500
DEV_TOOLS = {"pytest", "mypy", "ruff", "hypothesis", "schemathesis", "import-linter"}

pytestmark = [pytest.mark.timeout(BUILD_TIMEOUT_S + 300), pytest.mark.image]


def podman(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ENGINE, *argv], capture_output=True, text=True, timeout=timeout, check=False
    )


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    """`podman run` within this process's own limits: as root, podman asks for far more open
    files and processes than a machine without CAP_SYS_RESOURCE may grant, and the container
    then fails to start."""
    _, files = resource.getrlimit(resource.RLIMIT_NOFILE)
    _, processes = resource.getrlimit(resource.RLIMIT_NPROC)
    processes = min(processes, MAX_PROCESSES)
    limits = [f"--ulimit=nofile={files}:{files}", f"--ulimit=nproc={processes}:{processes}"]
    return podman("run", *limits, *argv)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image, as `scripts/image` builds it from a debootstrap base: by scripts/test in the
    background (it says where its status will be), or here, once per test run, whichever
    workers run these tests."""
    if shutil.which("podman") is None or shutil.which("debootstrap") is None:
        pytest.fail("podman and debootstrap are not installed (scripts/bootstrap installs them)")
    status = os.environ.get("VOXKEEP_TEST_IMAGE_STATUS")
    if status:
        code = wait_for_file(Path(status), BUILD_TIMEOUT_S)
        log = Path(os.environ["VOXKEEP_TEST_IMAGE_LOG"]).read_text(errors="replace")
        assert code == "0", f"scripts/image failed:\n{log[-3000:]}"
    else:
        with once("image", tmp_path_factory) as (_, fill):
            if fill:
                build_image()
    size = int(podman("image", "inspect", "--format", "{{.Size}}", TAG).stdout)
    print(f"image {TAG}: {size / 1e6:.0f} MB")  # (the closing note records it)
    return TAG


def build_image() -> None:
    env = {**os.environ, "ENGINE_FLAGS": " ".join(ENGINE[1:])}
    built = subprocess.run(
        [str(ROOT / "scripts" / "image"), "--base-from-debian", "--no-setup", "--tag", TAG,
         "--", "--network", "host"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]


def wait_for_file(path: Path, limit_s: float) -> str:
    """The text of `path` once something was written to it."""
    deadline = time.monotonic() + limit_s
    while not (path.is_file() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"nothing in {path} after {limit_s:.0f} s"
        time.sleep(1)
    return path.read_text().strip()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """The container's /data, owned by its user as a named volume would be."""
    folder = tmp_path / "data"
    folder.mkdir()
    os.chown(folder, USER_ID, USER_ID)
    return folder


@pytest.fixture
def containers() -> Iterator[list[str]]:
    started: list[str] = []
    yield started
    for name in started:
        podman("rm", "--force", "--time", "10", name)


def run_detached(
    image: str, name: str, data: Path, env: dict[str, str], *command: str
) -> list[str]:
    flags = [f"--env={k}={v}" for k, v in env.items()]
    done = run(
        "--detach", "--name", name, "--network", "host", "--volume", f"{data}:/data",
        *flags, image, *command,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [name]


def test_the_image_runs_as_its_own_user_with_no_dev_tools(image: str) -> None:
    assert run("--rm", image, "id", "-u").stdout.strip() == str(USER_ID)
    listed = run("--rm", image, "pip", "list", "--format", "json")
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert {"voxkeep", "asyncpg", "fastapi", "uvicorn"} <= installed
    assert not installed & DEV_TOOLS
    checked = run(
        "--rm", "--env=LIVEKIT_URL=ws://127.0.0.1:7880", "--env=LIVEKIT_API_KEY=k",
        "--env=LIVEKIT_API_SECRET=s", "--env=OPENAI_API_KEY=k", image,
        "sh", "-c", "voxkeepctl db migrate && python -m voxkeep check",
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "ready" in checked.stdout


@pytest.mark.livekit
async def test_the_container_answers_a_real_caller_and_stores_what_was_said(
    image: str,
    livekit_server: LocalServer,
    model_server: ModelServer,
    join: Join,
    data: Path,
    containers: list[str],
) -> None:
    said, answer = "I would like to plan a trip to Lisbon.", "Lisbon is lovely in spring."
    await model_server.learn(said, Voice())
    await model_server.script([answer])
    name = f"voxkeep-test-{os.getpid()}-{free_port()}"
    containers += run_detached(image, name, data, {
        "LIVEKIT_URL": livekit_server.url, "LIVEKIT_API_KEY": livekit_server.api_key,
        "LIVEKIT_API_SECRET": livekit_server.api_secret,
        "OPENAI_BASE_URL": model_server.base_url, "OPENAI_API_KEY": "test-key",
        "VOXKEEP_HTTP_HOST": "127.0.0.1", "VOXKEEP_HTTP_PORT": str(free_port()),
        "VOXKEEP_LOAD_THRESHOLD": "inf", "VOXKEEP_IDLE_PROCESSES": "1",
    })  # fmt: skip

    def registered() -> bool:
        return "registered worker" in podman("logs", name).stderr + podman("logs", name).stdout

    await wait_until(registered, 120, "the container's worker to register")
    alice = await join("alice")
    chat_id = await alice.chat_id(limit_s=60)
    await alice.turn(said)
    await alice.leave()

    store = await open_store(f"sqlite:///{data}/voxkeep.db")

    async def both() -> list[tuple[str, str | None]] | None:
        stored = (await store.messages(chat_id, owner=ANY_OWNER)).messages
        return [(m.role, m.content) for m in stored] if len(stored) >= 2 else None

    try:
        assert await eventually(both, 60, "the turn in the store") == [
            ("user", said), ("assistant", answer),
        ]  # fmt: skip
    finally:
        await store.aclose()


def test_the_console_is_served_from_the_image(
    image: str, data: Path, containers: list[str]
) -> None:
    port = free_port()
    token = "a-console-reading-token"
    name = f"voxkeep-console-{os.getpid()}-{port}"
    containers += run_detached(
        image, name, data, {"VOXKEEP_CONSOLE_TOKENS": f"read:{token}"},
        "sh", "-c", f"voxkeepctl db migrate && exec voxkeepctl serve --port {port}",
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
                page = answer.read().decode()
            break
        except OSError:
            running = podman("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
            assert running == "true", podman("logs", name).stderr
            assert time.monotonic() < deadline, "the console did not answer"
            time.sleep(0.2)
    assert "<title>" in page and "/assets/" in page
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/health", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as health:
        assert health.status == 200


def test_db_backup_works_on_postgresql_from_the_image(
    image: str, data: Path, pg_server: PgServer
) -> None:
    url = asyncio.run(new_database(pg_server))
    for argv in (["db", "migrate"], ["db", "backup", "/data/voxkeep.dump"]):
        done = run("--rm", "--network", "host", "--volume", f"{data}:/data", image,
                      "voxkeepctl", "--db", url, *argv)  # fmt: skip
        assert done.returncode == 0, done.stderr
    listed = subprocess.run(
        [str(pg_server.bin / "pg_restore"), "--list", str(data / "voxkeep.dump")],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "TABLE public chats" in listed.stdout and "TABLE public messages" in listed.stdout
