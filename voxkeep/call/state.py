"""What one call knows about itself, with one owner: the chat it writes to, the call row by
which it holds that chat, and the caller's prosody baseline. The behaviours wired onto the
session read these; only the methods here change them, and only the switcher (which chat the
call is in) and capture (what the caller's voice adds to the baseline) call them."""

from __future__ import annotations

from typing import Any

from voxkeep.core.ids import new_call_id, new_chat_id
from voxkeep.prosody.baseline import Baseline


class CallState:
    def __init__(self, owner: str, *, room: str | None = None, job_id: str | None = None):
        self.owner = owner
        self.room = room
        self.job_id = job_id
        self._chat_id = new_chat_id()
        self._call_id = new_call_id()
        self._baseline = Baseline()

    @property
    def chat_id(self) -> str:
        """The chat the call writes to now."""
        return self._chat_id

    @property
    def call_id(self) -> str:
        """The call row by which the call holds `chat_id` (a new one for each chat it enters)."""
        return self._call_id

    @property
    def baseline(self) -> Baseline:
        """The caller's prosody baseline in this chat, kept in its metadata (docs/prosody.md)."""
        return self._baseline

    def enter_new(self) -> None:
        """Move to a new chat, held by a new call row; the baseline starts over."""
        self._chat_id, self._call_id = new_chat_id(), new_call_id()
        self._baseline = Baseline()

    def enter(self, chat_id: str, call_id: str, baseline: Baseline) -> None:
        """Move to an existing chat, held by call row `call_id`, with its baseline: an earlier
        chat's, back; or, in a take-over's continuation chat, the same conversation's."""
        self._chat_id, self._call_id, self._baseline = chat_id, call_id, baseline

    def relate(self, prosody: dict[str, Any]) -> dict[str, Any]:
        """One utterance's prosody scored against the caller's baseline, which it then joins."""
        return self._baseline.relate(prosody)
