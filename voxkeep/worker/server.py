"""The worker's composition root (docs/architecture.md): what it builds when no factory of the
user's is named: the providers, the one session factory (shared by the worker, `voxkeepctl
simulate` and the tests) and our assistant, handed to `ChatHistory.start` (voxkeep/call/history.py)
like any user's agent; and LiveKit's `AgentServer` around it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from livekit.agents import AgentServer, AgentSession, JobContext, JobProcess, llm
from livekit.agents import vad as lk_vad
from livekit.agents.types import NOT_GIVEN
from livekit.agents.voice.turn import TurnDetectionMode, TurnHandlingOptions
from livekit.agents.worker import ServerOptions
from livekit.plugins import silero

from voxkeep.call.history import VAD_KEY, ChatHistory
from voxkeep.core.logs import configure_logging
from voxkeep.core.settings import Settings, load_settings
from voxkeep.jobs.background import run_background
from voxkeep.prosody.shared_vad import SharedVAD
from voxkeep.store import backend_module
from voxkeep.worker import providers as models
from voxkeep.worker.assistant import Assistant
from voxkeep.worker.factory import build, load_factory

log = structlog.get_logger(__name__)


REPORTED_LOAD_MAX = 0.99
"""The most load the worker reports. LiveKit's server (1.13) weighs each worker by 1 - its load
and sends nothing to one at 1 or more, whatever its own `target_load`: without a cap, a worker
that must never turn a call away (`VOXKEEP_LOAD_THRESHOLD=inf`) would get no call while its
machine's CPU is full. Below the worker's threshold the cap changes nothing."""
_LIVEKIT_LOAD: Callable[[AgentServer], float] = ServerOptions.__dataclass_fields__[
    "load_fnc"
].default  # type: ignore[assignment]  # (the dataclass declares it: LiveKit's default)


def reported_load(server: AgentServer) -> float:
    """LiveKit's own measure of the worker's load (CPU, averaged), capped below 1."""
    return min(float(_LIVEKIT_LOAD(server)), REPORTED_LOAD_MAX)


CALL_MODULES = (
    "numpy.fft",  # prosody's pitch and spectrum
    "numpy.ma",  # numpy's percentiles import it on first use (prosody's summaries)
    "wave",
    "jiter",
    "anyio._backends._asyncio",
    # the OpenAI clients' requests: the SDK imports each resource at its first use
    "openai.resources.audio.audio",
    "openai.resources.audio.speech",
    "openai.resources.audio.transcriptions",
    "openai.resources.chat.chat",
    "openai.resources.chat.completions.completions",
    "openai.resources.models",
    "openai.lib.streaming.chat",
    "livekit.agents.llm.async_toolset",
)
"""What a call imports at its first use, beyond what its entrypoint's module imports (found by
listing `sys.modules` in a job process before and after a call)."""


def preloaded(settings: Settings) -> list[str]:
    """Modules a call imports, imported once in LiveKit's forkserver rather than in each job
    process: a call then starts without importing them, and its process shares them with the
    others copy-on-write instead of holding a copy of its own."""
    return [__name__, backend_module(settings.db_url), *CALL_MODULES]


def prewarm(proc: JobProcess) -> None:
    proc.userdata[VAD_KEY] = silero.VAD.load()


def build_session(
    vad: lk_vad.VAD,
    providers: models.Providers,
    *,
    turn_detection: TurnDetectionMode | None = None,
    adaptive_interruption: bool = False,
    preemptive_generation: bool | None = None,
    simulated: bool = False,
) -> AgentSession[None]:
    """The one session factory. Turns end on the caller's silence (`vad`) unless
    `turn_detection` names a detector (a realtime model detects them itself). Interruptions
    are decided by the local VAD unless
    `adaptive_interruption` lets LiveKit choose (which, under `dev`, sends the caller's audio
    to LiveKit Cloud). `simulated` is for a caller with no echo path (the simulator's): no AEC
    warm-up, which would drop the caller's speech during the agent's first seconds of
    talking."""
    realtime = isinstance(providers.llm, llm.RealtimeModel)
    turns: TurnHandlingOptions = {
        "turn_detection": turn_detection or ("realtime_llm" if realtime else "vad"),
        "interruption": {} if adaptive_interruption else {"mode": "vad"},
    }
    if preemptive_generation is not None:  # (None: LiveKit's default)
        turns["preemptive_generation"] = {"enabled": preemptive_generation}
    return AgentSession(
        vad=vad,
        stt=providers.stt or NOT_GIVEN,
        llm=providers.llm,
        tts=providers.tts or NOT_GIVEN,
        turn_handling=turns,
        aec_warmup_duration=0.0 if simulated else NOT_GIVEN,
    )


async def entrypoint(ctx: JobContext) -> None:
    """The user's session and agent (`VOXKEEP_FACTORY`), or ours on the providers the settings
    name, through the same `ChatHistory.start` a user's own entrypoint calls
    (docs/embedding.md)."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    vad = ctx.proc.userdata[VAD_KEY]
    if settings.factory:
        session, agent = await build(load_factory(settings.factory), ctx)
        summaries = None  # the session's own LLM, if it has one
    else:
        providers = models.build(settings)
        session = build_session(
            SharedVAD(vad),  # one inference for the session's turns and prosody's utterances
            providers,
            turn_detection=models.turn_detection(settings),
            adaptive_interruption=settings.adaptive_interruption,
            preemptive_generation=settings.preemptive_generation,
        )
        agent = Assistant(settings.instructions)
        summaries = providers.summaries
    history = ChatHistory(settings, prosody_vad=vad, summary_llm=summaries)
    await history.start(ctx, session, agent)


def build_server(
    settings: Settings, serve: Callable[[JobContext], Awaitable[None]] = entrypoint
) -> AgentServer:
    """The worker: LiveKit's `AgentServer` with our settings, `serve` for each job (our
    entrypoint), and the sweeper, webhook delivery and `/metrics` in its main process (ours
    rather than LiveKit's metrics server: docs/metrics.md)."""
    options: dict[str, Any] = {
        "host": settings.http_host,
        "port": settings.http_port,
        "load_threshold": settings.load_threshold,
        "num_idle_processes": settings.idle_processes,
        "drain_timeout": settings.drain_timeout_s,
        "preload_modules": preloaded(settings),
    }
    server = AgentServer(
        setup_fnc=prewarm, load_fnc=reported_load,
        **{name: v for name, v in options.items() if v is not None},
    )  # fmt: skip
    server.rtc_session(serve, agent_name=settings.agent_name)

    def registered(worker_id: str, *_: Any) -> None:  # tells a supervisor the worker is ready
        log.info("worker.registered", worker_id=worker_id, agent_name=settings.agent_name)

    server.on("worker_registered", registered)
    run_background(server, settings)  # as a user's own server adds it (docs/embedding.md)
    return server
