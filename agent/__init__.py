"""A LiveKit Agents voice-agent worker with built-in persistence."""

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.history import Call, ChatHistory

# onnxruntime (loaded by the silero VAD) reports telemetry to Microsoft unless told not to; a
# self-hosted worker connects only to what its operator configured (docs/architecture.md).
# Set before onnxruntime can be imported, and inherited by LiveKit's job processes.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__all__ = ["Call", "ChatHistory"]


def __getattr__(name: str) -> object:
    # `from agent import ChatHistory` without making every `import agent` (agentctl's, say)
    # load LiveKit
    if name in __all__:
        from agent import history

        return getattr(history, name)
    raise AttributeError(f"module 'agent' has no attribute {name!r}")
