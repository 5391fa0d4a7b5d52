"""Voxkeep: a LiveKit Agents voice-agent worker with built-in persistence, and the persistence
on its own for your agent (docs/embedding.md).

The names below are the public surface, documented in docs/ and changed only with a CHANGELOG
entry. Every other module is internal and may move between releases. They are loaded on first
use, so `import voxkeep` (the CLI's, say) does not load LiveKit.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from voxkeep.call.history import ChatHistory
    from voxkeep.call.lifecycle import Call
    from voxkeep.core.errors import (
        ConfigError,
        NotFound,
        StoreError,
        StoreUnavailable,
        VoxkeepError,
    )
    from voxkeep.core.settings import Settings, load_settings
    from voxkeep.jobs.background import run_background
    from voxkeep.store import Store, open_store
    from voxkeep.store.records import Chat, Message

# onnxruntime (loaded by the silero VAD) reports telemetry to Microsoft unless told not to; a
# self-hosted worker connects only to what its operator configured (docs/architecture.md).
# Set before onnxruntime can be imported, and inherited by LiveKit's job processes.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

_PUBLIC = {
    "ChatHistory": "voxkeep.call.history",
    "Call": "voxkeep.call.lifecycle",
    "Settings": "voxkeep.core.settings",
    "load_settings": "voxkeep.core.settings",
    "Store": "voxkeep.store",
    "open_store": "voxkeep.store",
    "Chat": "voxkeep.store.records",
    "Message": "voxkeep.store.records",
    "run_background": "voxkeep.jobs.background",
    "SharedVAD": "voxkeep.prosody.shared_vad",
    "VoxkeepError": "voxkeep.core.errors",
    "ConfigError": "voxkeep.core.errors",
    "NotFound": "voxkeep.core.errors",
    "StoreError": "voxkeep.core.errors",
    "StoreUnavailable": "voxkeep.core.errors",
}
__all__ = [
    "Call",
    "Chat",
    "ChatHistory",
    "ConfigError",
    "Message",
    "NotFound",
    "Settings",
    "SharedVAD",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "VoxkeepError",
    "load_settings",
    "open_store",
    "run_background",
]


def __getattr__(name: str) -> object:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'voxkeep' has no attribute {name!r}")
