"""`VOXKEEP_FACTORY=package.module:function`: the user's own session and agent, to which the
worker adds persistence (docs/embedding.md). The function takes the `JobContext` and returns
`(AgentSession, Agent)`, directly or as an awaitable; it must not start the session."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from livekit.agents import Agent, AgentSession, JobContext

from voxkeep.core.errors import ConfigError, VoxkeepError

Factory = Callable[[JobContext], Any]


def load_factory(path: str) -> Factory:
    """The function `path` names; ConfigError in one line when it cannot be had."""
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - whatever the user's module raised, said in one line
        raise ConfigError(
            f"VOXKEEP_FACTORY: cannot import {module_name} ({type(exc).__name__}: {exc})"
        ) from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        what = "is not callable" if factory is not None else "does not exist"
        raise ConfigError(f"VOXKEEP_FACTORY: {path} {what}")
    return factory  # type: ignore[no-any-return]


async def build(factory: Factory, ctx: JobContext) -> tuple[AgentSession[Any], Agent]:
    """The session and agent `factory` makes for this job."""
    made = factory(ctx)
    if inspect.isawaitable(made):
        made = await made
    match made:
        case (AgentSession() as session, Agent() as agent):
            return session, agent
    raise VoxkeepError(f"VOXKEEP_FACTORY returned {type(made).__name__}, not (AgentSession, Agent)")
