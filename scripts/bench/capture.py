"""Capture benchmark (docs/benchmarks.md): finalize→committed latency and event-loop lag during a
simulated call — the real session, VAD, OpenAI plugins (against the local servers) and store —
beside the same call with capture switched off, in the same run; once with STT, LLM and TTS,
once with a realtime model (OpenAI Realtime against the local Realtime server). The stand-in
servers run in processes of their own, as a real provider would.

    .venv/bin/python scripts/bench/capture.py [--turns 8]

Finalize→committed runs from the session's `conversation_item_added` (the message is final)
to the moment the writer's future resolves (it is durable). The prosody of a user message
follows it: finalize→prosody committed is measured the same way. Lag is how late a 1 ms timer
fires while the call runs. The caller speaks in real time, as a microphone delivers audio.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import loop_lag, percentile, print_table
from livekit.agents import llm
from livekit.agents.voice.events import ConversationItemAddedEvent
from livekit.plugins import silero
from pydantic import SecretStr

from voxkeep.call.capture import Capture
from voxkeep.call.history import open_writer
from voxkeep.core.logs import configure_logging
from voxkeep.core.settings import Settings
from voxkeep.sim.audio import MIC_RATE
from voxkeep.sim.call import SimCall
from voxkeep.sim.speech import ESPEAK_RATE, espeak, resample
from voxkeep.store import open_store
from voxkeep.store.records import Record
from voxkeep.worker import providers as models

SAID = [
    "I'd like to plan a trip to Lisbon.",
    "What's the weather there?",
    "Book it for Friday please.",
    "And a table for dinner too.",
]


async def stand_in(module: str, *args: str) -> tuple[asyncio.subprocess.Process, str]:
    """A stand-in model server in a process of its own, and its base URL."""
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert server.stdout is not None
    async with asyncio.timeout(60):
        return server, (await server.stdout.readline()).decode().strip()


async def one_call(
    folder: Path, turns: int, *, capture: bool, realtime: bool
) -> dict[str, list[float]]:
    server, url = await (
        stand_in("tests.support.realtime_server", *SAID)
        if realtime
        else stand_in("voxkeep.sim.openai_server", str(MIC_RATE), *SAID)
    )
    name = f"{'realtime' if realtime else 'pipeline'}-{'on' if capture else 'off'}"
    settings = Settings(
        db_url=f"sqlite:///{folder}/{name}.db",
        journal_dir=str(folder / "journal"),
        openai_base_url=url,
        openai_api_key=SecretStr("bench"),
        realtime_model="gpt-realtime" if realtime else "",
    )
    store = await open_store(settings.db_url)
    await store.migrate()
    writer = await open_writer(settings, store)
    finalized: dict[str, float] = {}
    timings: dict[str, list[float]] = {"latency": [], "prosody": [], "start": [], "lag": []}
    submit = writer.submit

    def timed_submit(record: Record) -> asyncio.Future[None]:
        ref = record.ref
        start = finalized.get(ref, time.perf_counter())
        future = submit(record)
        into = {"message": "latency", "message_measured": "prosody"}.get(record.kind, "start")
        future.add_done_callback(
            lambda _: timings[into].append((time.perf_counter() - start) * 1e3)
        )
        return future

    writer.submit = timed_submit  # type: ignore[method-assign]
    clips = [resample(await espeak(text), ESPEAK_RATE, MIC_RATE) for text in SAID]
    attach = Capture.attach
    if not capture:
        Capture.attach = lambda self, session: None  # type: ignore[method-assign]
    providers = models.build(settings)
    try:
        call = SimCall(settings, writer, silero.VAD.load(), providers, realtime_mic=True)

        def on_item(ev: ConversationItemAddedEvent) -> None:  # before capture hears of it
            if isinstance(ev.item, llm.ChatMessage):
                finalized[ev.item.id] = time.perf_counter()

        call.session.on("conversation_item_added", on_item)
        await call.start()
        async with loop_lag(timings["lag"]):
            for turn in range(turns):
                await call.say(clips[turn % len(clips)])
        await call.end("hangup")
    finally:
        Capture.attach = attach  # type: ignore[method-assign]
        await writer.aclose()
        if isinstance(providers.llm, llm.RealtimeModel):
            await providers.llm.aclose()
        assert server.stdin is not None
        server.stdin.close()
        await server.wait()
    return timings


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q):.2f} ms" if values else "none"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=8)
    args = parser.parse_args()
    configure_logging("WARNING", handler=True)
    rows: list[list[Any]] = []
    for realtime in (False, True):
        path = "realtime" if realtime else "STT+LLM+TTS"
        with tempfile.TemporaryDirectory() as tmp:
            try:
                on = await one_call(Path(tmp), args.turns, capture=True, realtime=realtime)
                off = await one_call(Path(tmp), args.turns, capture=False, realtime=realtime)
            except Exception as exc:  # noqa: BLE001 - a path that fails is a result to print
                rows.append([path, f"failed: {type(exc).__name__}", "", "", ""])
                continue
        lat, pro = on["latency"], on["prosody"]
        rows += [
            [path, f"finalize→committed p50 ({len(lat)} messages)", ms(lat, 0.5), "", ""],
            [path, "finalize→committed p99", ms(lat, 0.99), "", ""],
            [path, f"finalize→prosody committed p50 ({len(pro)})", ms(pro, 0.5), "", ""],
            [path, "finalize→prosody committed p99", ms(pro, 0.99), "", ""],
            [path, "chat and call rows at call start, max", f"{max(on['start']):.2f} ms", "", ""],
        ]
        for q in (0.5, 0.99):
            a, b = percentile(on["lag"], q), percentile(off["lag"], q)
            rows.append([path, f"event-loop lag p{int(q * 100)}", f"{a:.2f} ms", f"{b:.2f} ms",
                         f"{a - b:+.2f} ms"])  # fmt: skip
    print_table(["session", "metric", "capture on", "capture off", "added by capture"], rows)
    print(
        "\nTargets (docs/benchmarks.md): finalize→committed p99 ≤ 5 ms; capture adds ≤ 1 ms p99"
        " of lag. Prosody follows its message once our VAD closes the utterance."
    )


if __name__ == "__main__":
    asyncio.run(main())
