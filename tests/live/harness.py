"""What the end-to-end tests on the real LiveKit server share beyond the caller and the
processes of `voxkeep/sim/`: waiting on the store, reading what the model was sent, and running
the installed `voxkeepctl` as an operator would."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.support.processes import ModelServer
from voxkeep.sim.speech import Voice

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T | None]], limit_s: float, what: str) -> T:
    """Await `probe` until it returns something; fail naming `what` after `limit_s`."""
    try:
        async with asyncio.timeout(limit_s):
            while (value := await probe()) is None:  # noqa: ASYNC110 - a store, polled
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise TimeoutError(f"timed out after {limit_s:.0f} s waiting for {what}") from None
    return value


def said(request: dict[str, Any]) -> list[tuple[str, str]]:
    """The user and assistant turns of an LLM request, as (role, text)."""
    turns = []
    for m in request["messages"]:
        content = m.get("content")
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        if m["role"] in ("user", "assistant") and content:
            turns.append((m["role"], content))
    return turns


# --- voxkeepctl ----------------------------------------------------------------------------------

VOXKEEPCTL = Path(sys.executable).parent / "voxkeepctl"


async def voxkeepctl(env: dict[str, str], *argv: str) -> tuple[int, str, str]:
    """The installed `voxkeepctl`, run as an operator would: exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        VOXKEEPCTL, *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def scripted(model: ModelServer, turns: list[str], replies: list[str]) -> None:
    """The stand-in model server knows each of `turns` when spoken, and answers with `replies`
    in order."""
    for text in turns:
        await model.learn(text, Voice())
    await model.script(replies)


CONTINUING = {  # workers that continue a call whose worker died, noticed within seconds
    "VOXKEEP_HEARTBEAT_S": "1",
    "VOXKEEP_CONTINUE_AFTER_S": "4",
    "VOXKEEP_CONTINUE_CHECK_S": "0.5",
}
