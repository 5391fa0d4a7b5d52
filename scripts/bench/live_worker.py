"""The worker `live.py` measures, as its own process: ours (`voxkeep.worker.server.entrypoint`),
or a bare
LiveKit agent with the same session factory, providers and VAD and nothing of ours (no capture,
prosody, control, resume or store). Both answer a bare RPC echo on the agent participant, the
floor for the control round trip.

    python scripts/bench/live_worker.py ours|bare start
"""

from __future__ import annotations

import sys

from livekit import rtc
from livekit.agents import Agent, JobContext, cli

from voxkeep.core.logs import configure_logging
from voxkeep.core.settings import load_settings
from voxkeep.worker import providers as models
from voxkeep.worker.server import build_server, build_session, entrypoint

ECHO = "bench.echo"


async def echo(data: rtc.RpcInvocationData) -> str:
    return data.payload


async def ours(ctx: JobContext) -> None:
    await entrypoint(ctx)
    ctx.room.local_participant.register_rpc_method(ECHO, echo)


async def bare(ctx: JobContext) -> None:
    settings = load_settings()
    await ctx.connect()
    ctx.room.local_participant.register_rpc_method(ECHO, echo)
    await ctx.wait_for_participant()
    session = build_session(ctx.proc.userdata["vad"], models.build(settings))
    await session.start(Agent(instructions=settings.instructions), room=ctx.room)


if __name__ == "__main__":
    mode = sys.argv.pop(1)
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)  # as `python -m voxkeep` does
    cli.run_app(build_server(settings, ours if mode == "ours" else bare))
