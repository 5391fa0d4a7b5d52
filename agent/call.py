"""What one call knows about itself, shared by the behaviours wired onto its session."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.plugins.prosody.baseline import Baseline


@dataclass
class CallState:
    call_id: str
    owner: str
    chat_id: str
    room: str | None = None
    job_id: str | None = None
    baseline: Baseline = field(default_factory=Baseline)
    """The caller's prosody baseline, kept in the chat's metadata (docs/prosody.md)."""
    pending_extra: tuple[str, dict[str, Any]] | None = None
    """The last user turn's transcript and what was measured of it (`ChatMessage.extra`:
    prosody and speech times), until its message reaches history."""
