"""The processes around a real call, for the end-to-end tests and the live benchmark: the
stand-in model server (`python -m voxkeep.sim.openai_server`) and the worker (`python -m voxkeep`),
each a process of its own, as a real provider and a real deployment would be."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.caller import RATE, wait_until
from voxkeep.sim.openai_server import ToolCall
from voxkeep.sim.speech import Voice


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any setting of ours or LiveKit's or OpenAI's."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VOXKEEP_", "LIVEKIT_", "OPENAI_"))
    }
    return {**env, **extra}


async def hang_up(proc: asyncio.subprocess.Process, grace_s: float = 10.0) -> None:
    """Stop a process that serves until its standard input closes: close it, wait, and kill
    it if it has not gone within `grace_s`."""
    if proc.returncode is not None:
        return
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), grace_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()


class ModelServer:
    """`python -m voxkeep.sim.openai_server` in a process of its own: the OpenAI API the worker's
    plugins call, told which clips to recognize and asked what it received."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self.base_url = ""

    async def start(self) -> str:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "voxkeep.sim.openai_server",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=clean_env(),
        )  # fmt: skip
        assert self._proc.stdout is not None
        async with asyncio.timeout(60):
            self.base_url = (await self._proc.stdout.readline()).decode().strip()
        assert self.base_url.startswith("http://127.0.0.1:"), self.base_url
        return self.base_url

    async def aclose(self) -> None:
        if self._proc is not None:
            await hang_up(self._proc)

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        root = self.base_url.removesuffix("/v1")
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                method, root + path, json=body, timeout=aiohttp.ClientTimeout(total=30)
            ) as reply,
        ):
            reply.raise_for_status()
            return await reply.json()

    async def learn(self, text: str, voice: Voice) -> None:
        """Recognize `text` when it is heard in this voice (at the microphone's rate)."""
        voice_json = {"pitch": voice.pitch, "rate": voice.rate, "volume": voice.volume}
        await self._call("POST", "/sim/clips", {"text": text, "voice": voice_json, "rate": RATE})

    async def script(self, replies: Sequence[str | ToolCall]) -> None:
        wire = [
            {"tool": r.name, "arguments": r.arguments} if isinstance(r, ToolCall) else r
            for r in replies
        ]
        await self._call("POST", "/sim/replies", {"replies": wire})

    async def requests(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self._call("GET", "/sim/requests")
        return found

    async def chat_requests(self) -> list[dict[str, Any]]:
        return [r["body"] for r in await self.requests() if r["path"] == "/v1/chat/completions"]


@dataclass
class Worker:
    """`python -m voxkeep start` (or another command), a process of its own with its own process
    group, its output kept in `log`."""

    env: dict[str, str]
    log: Path
    command: str = "start"
    wrapper: list[str] = field(default_factory=list)
    """Run under another program, e.g. strace."""
    program: list[str] = field(default_factory=lambda: ["-m", "voxkeep"])
    """What Python runs, before the command: the worker's module, or a script around it."""
    ready: str = "worker.registered"
    """The log event that says the worker has registered (LiveKit's own is "registered
    worker", for a worker that is not ours)."""
    _proc: subprocess.Popen[bytes] | None = None

    async def start(self, limit_s: float = 90.0) -> None:
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(  # noqa: ASYNC220 - a process group of its own
                [*self.wrapper, sys.executable, *self.program, self.command],
                env=self.env,
                cwd=self.log.parent,  # no .env of the developer's
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        await wait_until(
            lambda: self.registered or self._proc is None or self._proc.poll() is not None,
            limit_s,
            "the worker to register with the LiveKit server",
        )
        if not self.registered:
            raise RuntimeError(f"the worker exited with {self.returncode}: see {self.log}")

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    @property
    def registered(self) -> bool:
        return self.saw(self.ready)

    def events(self) -> list[dict[str, Any]]:
        """The worker's log, one JSON record a line (its other lines left out)."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    found.append(record)
        return found

    def _worker_pid(self) -> int:
        assert self._proc is not None
        if not self.wrapper:
            return self._proc.pid
        children = Path(f"/proc/{self._proc.pid}/task/{self._proc.pid}/children").read_text()
        return int(children.split()[0])

    def events_named(self, message: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("message") == message]

    def saw(self, message: str) -> bool:
        """Whether the worker has logged this event (JSON under `start`, console lines under
        `dev`)."""
        console = f" - {message} "
        return bool(self.events_named(message)) or console in self.log.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group: the worker and its job processes."""
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, sig)

    async def stop(self, limit_s: float = 30.0) -> int:
        """SIGTERM to the worker (under a wrapper, to the wrapped worker), as an orchestrator
        stops it; SIGKILL to what is left after `limit_s`."""
        if self._proc is None:
            return 0
        if self._proc.poll() is None:
            os.kill(self._worker_pid(), signal.SIGTERM)
        try:
            await wait_until(lambda: self.returncode is not None, limit_s, "the worker to stop")
        except TimeoutError:
            self.kill()
        self._proc.wait()
        self.kill()  # any job process left behind
        return self._proc.returncode
