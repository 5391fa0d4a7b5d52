"""The reference web app in Debian's Chromium, driven through `web/e2e/driver.mjs`
(playwright-core) one command at a time, with a WAV file as the microphone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from tests.support.processes import hang_up
from voxkeep.sim.speech import ESPEAK_RATE, Voice, espeak, resample, write_wav

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "web" / "e2e" / "driver.mjs"
MIC_RATE = 48_000
TAIL_S = 1.5
"""Quiet after each utterance, so the agent hears its end."""
STEP_S = 15.0
VOICE = Voice()
T = TypeVar("T")


class BrowserError(Exception):
    pass


class Browser:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.mic = folder / "mic.wav"
        self._log = folder / "driver.log"
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._write_mic(np.zeros(MIC_RATE // 2, dtype=np.int16))
        with self._log.open("wb") as log:
            self._proc = await asyncio.create_subprocess_exec(
                "node", str(DRIVER), str(self.mic),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
            )  # fmt: skip
        assert self._proc.stdout is not None
        ready = await asyncio.wait_for(self._proc.stdout.readline(), 60)
        if not ready:
            raise BrowserError(f"the browser did not start: {self._log.read_text()[-2000:]}")

    async def do(self, op: str, timeout_s: float = STEP_S, **args: Any) -> Any:
        assert self._proc is not None and self._proc.stdin and self._proc.stdout
        command = {"op": op, **args}
        if "selector" in args:
            command["timeout"] = int(timeout_s * 1000)
        self._proc.stdin.write((json.dumps(command) + "\n").encode())
        await self._proc.stdin.drain()
        line = await asyncio.wait_for(self._proc.stdout.readline(), timeout_s + 10)
        answer = json.loads(line)
        if not answer["ok"]:
            raise BrowserError(f"{op} {args}: {answer['error']}")
        return answer["value"]

    async def click(self, selector: str) -> None:
        await self.do("click", selector=selector)

    async def texts(self, selector: str) -> list[str]:
        return list(await self.do("texts", selector=selector))

    async def attribute(self, selector: str, name: str) -> str | None:
        value = await self.do("attribute", selector=selector, name=name)
        return None if value is None else str(value)

    async def shows(self, selector: str, limit_s: float = STEP_S) -> None:
        await self.do("wait", timeout_s=limit_s, selector=selector)

    async def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        await self.do("screenshot", path=str(path))

    async def until(self, probe: Callable[[], Awaitable[T | None]], limit_s: float, what: str) -> T:
        """Poll the page until `probe` returns something."""
        try:
            async with asyncio.timeout(limit_s):
                while (value := await probe()) is None:  # noqa: ASYNC110 - a page, polled
                    await asyncio.sleep(0.2)
        except TimeoutError:
            logs = [line[:200] for line in await self.do("logs")]
            raise TimeoutError(
                f"timed out after {limit_s:.0f} s waiting for {what}; page: {logs[-8:]}"
            ) from None
        return value

    async def say(self, text: str, voice: Voice = VOICE) -> None:
        """Speak `text` into the microphone: the capture restarts (Mute, Unmute) on a file
        holding the utterance and a quiet tail."""
        speech = resample(await espeak(text, voice), ESPEAK_RATE, MIC_RATE)
        self._write_mic(np.concatenate([speech, np.zeros(int(MIC_RATE * TAIL_S), dtype=np.int16)]))
        await self.click("[data-testid=mic]")  # Mute: the capture stops
        await self.click("[data-testid=mic]")  # Unmute: it starts again, on the new file

    def _write_mic(self, samples: Any) -> None:
        partial = self.mic.with_suffix(".part")
        partial.write_bytes(write_wav(samples, MIC_RATE))
        partial.replace(self.mic)

    async def aclose(self) -> None:
        if self._proc is not None:
            await hang_up(self._proc)
