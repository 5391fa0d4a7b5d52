"""`scripts/run` with no LIVEKIT_URL: a LiveKit server of its own on ws://127.0.0.1:7880 with
the development key, the worker against it, how to join printed, and both stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import shlex
import signal
import socket
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.live.conftest import Join
from tests.live.harness import ROOT, voxkeepctl
from tests.support.caller import token, wait_until
from tests.support.processes import ModelServer, clean_env, free_port
from voxkeep.sim.speech import Voice

LISBON = "I would like to plan a trip to Lisbon."
LOCAL = "ws://127.0.0.1:7880"


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url.replace("ws://", "http://") + "/", timeout=1) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture
def local_ports() -> Iterator[None]:
    """The fixed ports `scripts/run` serves on (config/livekit*.yaml), for one test at a time
    (the suite runs tests in parallel)."""
    with (Path(tempfile.gettempdir()) / "voxkeep-scripts-run.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def run_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """As a newcomer runs it: no LiveKit settings (empty ones also hide a developer's .env)."""
    nothing = {"LIVEKIT_URL": "", "LIVEKIT_API_KEY": "", "LIVEKIT_API_SECRET": "",
               "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}  # fmt: skip
    return clean_env(**{
        **nothing,
        "VOXKEEP_DB_URL": f"sqlite:///{tmp_path}/voxkeep.db",
        "VOXKEEP_JOURNAL_DIR": str(tmp_path / "journal"),
        "VOXKEEP_REJOIN_GRACE_S": "0",  # (the call ends as the caller leaves)
        **extra,
    })  # fmt: skip


async def test_scripts_run_brings_a_local_server_runs_the_worker_and_stops_both(
    model_server: ModelServer, join: Join, tmp_path: Path, local_ports: None
) -> None:
    assert not answers(LOCAL)  # nothing of anyone's is there already
    web_port = free_port()
    app = f"http://127.0.0.1:{web_port}/"
    await model_server.learn(LISBON, Voice())
    env = run_env(
        tmp_path,
        OPENAI_BASE_URL=model_server.base_url, OPENAI_API_KEY="test-key",
        VOXKEEP_HTTP_HOST="127.0.0.1", VOXKEEP_HTTP_PORT=str(free_port()),
        VOXKEEP_LOAD_THRESHOLD="inf", VOXKEEP_IDLE_PROCESSES="1", VOXKEEP_WEB_PORT=str(web_port),
    )  # fmt: skip
    output = tmp_path / "run.log"
    with output.open("wb") as out:
        run = subprocess.Popen(  # noqa: ASYNC220 - a process group of its own, signalled below
            [ROOT / "scripts" / "run"], env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        await wait_until(lambda: "worker.registered" in output.read_text(), 120, "the worker")
        printed = output.read_text()
        hint = re.search(r"^\s*(LIVEKIT_URL=\S+ LIVEKIT_API_KEY=\S+ LIVEKIT_API_SECRET=\S+) "
                         r"\.venv/bin/voxkeepctl (token .*)$", printed, re.MULTILINE)  # fmt: skip
        assert hint is not None, printed
        assert f"LIVEKIT_URL={LOCAL} LIVEKIT_API_KEY=devkey LIVEKIT_API_SECRET=secret" in printed
        joining = dict(pair.split("=", 1) for pair in hint.group(1).split())
        room = f"run-{os.getpid()}"
        argv = shlex.split(hint.group(2).replace("--room demo", f"--room {room}"))
        code, jwt, err = await voxkeepctl({**clean_env(), **joining}, *argv)
        assert (code, err) == (0, "")

        async with aiohttp.ClientSession() as http:  # the web app is served too
            async with http.get(app) as page:
                assert '<div id="root">' in await page.text()
            async with http.post(f"{app}api/token", json={"identity": "me"}) as minted:
                assert (await minted.json())["url"] == LOCAL

        alice = await join("me", jwt=jwt.strip(), url=LOCAL)
        await alice.chat_id()
        await alice.turn(LISBON)  # the local server and the worker serve a real call
        await alice.leave()
        await wait_until(lambda: "call.ended" in output.read_text(), 30, "the call to end")

        run.send_signal(signal.SIGTERM)
        await wait_until(lambda: run.poll() is not None, 60, "scripts/run to stop")
        assert run.returncode == 0
        assert not answers(LOCAL)  # the server is gone too
        assert "worker.registered" in printed
        assert f"web app: {app}" in printed  # the door a newcomer opens
        assert not answers(app.rstrip("/"))  # and it is closed again
    finally:
        await _stopped(run)


@pytest.mark.livekit  # scripts/run sets up first, the LiveKit server with the rest
async def test_scripts_run_says_in_one_line_that_it_needs_model_credentials(
    tmp_path: Path,
) -> None:
    proc = await asyncio.create_subprocess_exec(
        ROOT / "scripts" / "run", env=run_env(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(120):
        out, err = await proc.communicate()
    assert proc.returncode == 1
    assert err.decode().splitlines()[-1] == (
        "run: set OPENAI_API_KEY (or OPENAI_BASE_URL) in .env or the environment "
        "(see config/example.env)"
    )
    assert b"LiveKit server on" not in out  # it started no server before it said so


async def test_scripts_run_with_two_nodes_brings_a_cluster_and_a_worker_on_each_node(
    model_server: ModelServer, join: Join, tmp_path: Path, local_ports: None
) -> None:
    """`scripts/run --nodes 2`: Redis, the two nodes of config/, a worker registered with each;
    a caller joining through the second node is answered; SIGTERM stops it all."""
    nodes = ["ws://127.0.0.1:7880", "ws://127.0.0.1:7890"]
    assert not any(answers(node) for node in nodes)
    await model_server.learn(LISBON, Voice())
    env = run_env(
        tmp_path,
        OPENAI_BASE_URL=model_server.base_url, OPENAI_API_KEY="test-key",
        VOXKEEP_HTTP_HOST="127.0.0.1", VOXKEEP_HTTP_PORT="0",
        VOXKEEP_LOAD_THRESHOLD="inf", VOXKEEP_IDLE_PROCESSES="1",
        VOXKEEP_WEB_PORT=str(free_port()),
    )  # fmt: skip
    output = tmp_path / "run.log"
    with output.open("wb") as out:
        run = subprocess.Popen(  # noqa: ASYNC220 - a process group of its own, signalled below
            [ROOT / "scripts" / "run", "--nodes", "2"], env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        await wait_until(
            lambda: output.read_text().count("worker.registered") >= 2, 120, "both workers"
        )
        assert all(answers(node) for node in nodes)
        assert f"A worker registers with each of 2 nodes: {', '.join(nodes)}" in output.read_text()
        jwt = token("devkey", "secret", f"run-nodes-{os.getpid()}", "me")
        alice = await join("me", jwt=jwt, url=nodes[1])
        await alice.chat_id()
        await alice.turn(LISBON)
        await alice.leave()

        run.send_signal(signal.SIGTERM)
        await wait_until(lambda: run.poll() is not None, 60, "scripts/run to stop")
        assert run.returncode == 0
        assert not any(answers(node) for node in nodes)
        assert not _listening(7879)  # Redis is gone too
    finally:
        await _stopped(run)


async def _stopped(run: subprocess.Popen[bytes]) -> None:
    """If the test failed first: scripts/run stops what it started on SIGTERM, or is killed."""
    if run.poll() is None:
        os.killpg(run.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await wait_until(lambda: run.poll() is not None, 60, "scripts/run to stop")
    if run.poll() is None:
        os.killpg(run.pid, signal.SIGKILL)
    run.wait()


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False
