"""What the agent and the caller's app share on the room besides the commands (docs/control.md):
the RPC method, the participant attributes each side sets, and the `chat.started` event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RPC_METHOD = "voxkeep.control"
"""The RPC method the agent registers; the data packets' topic is a setting
(`VOXKEEP_CONTROL_TOPIC`)."""
CHAT_ATTRIBUTE = "voxkeep.chat_id"
"""The agent's participant attribute: the call's current chat."""
RESUME_ATTRIBUTE = "voxkeep.resume_chat_id"
"""The caller's participant attribute naming a chat to resume (docs/resume.md)."""
PROSODY_ATTRIBUTE = "voxkeep.prosody"
"""The caller's participant attribute switching prosody off for them: `off` (docs/prosody.md)."""
MAX_CHAT_ID_CHARS = 64


@dataclass(frozen=True, slots=True)
class ChatStarted:
    """The `chat.started` event (docs/control.md). `reason` says why a requested chat was not
    resumed (`not_found`, `unavailable`, `timeout`) or why the call moved on (`taken_over`,
    `deleted`)."""

    chat_id: str
    resumed: bool
    message_count: int
    reason: str | None = None

    def event(self) -> dict[str, Any]:
        event = {"v": 1, "type": "chat.started", "chat_id": self.chat_id,
                 "resumed": self.resumed, "message_count": self.message_count}  # fmt: skip
        if self.reason is not None:
            event["reason"] = self.reason
        return event
