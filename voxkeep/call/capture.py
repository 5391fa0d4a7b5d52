"""Capture (docs/store.md): every finalized message of a call, handed to the writer the moment it
finalizes. The session's callbacks are synchronous and on the call's path, so they only build
a record and submit it (microseconds); the writer commits off the loop. The prosody of a user
message's speech follows it (`MessageMeasured`) once our VAD has closed the utterance, within
a second, so the message itself is never kept waiting. Nothing here raises into the session,
and message text never reaches a log.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from livekit.agents import AgentSession, llm
from livekit.agents.voice.events import ConversationItemAddedEvent, FunctionToolsExecutedEvent

from voxkeep.call.state import CallState
from voxkeep.core.errors import ChatDeleted, TakenOver
from voxkeep.prosody.stream import ProsodyStream
from voxkeep.store.base import LostHold
from voxkeep.store.records import (
    CallEnded,
    ChatMetadataSet,
    ChatStatus,
    MessageMeasured,
    NewCall,
    NewChat,
    NewMessage,
    Record,
)
from voxkeep.store.writer import Writer

log = structlog.get_logger(__name__)

CallEnd = Literal["hangup", "shutdown", "lost"]
ChatEnd = Literal["hangup", "shutdown", "lost", "new_chat", "switched"]
"""Why the call lets go of its chat: the call ended, or the caller started another chat."""
BASELINE_KEY = "prosody_baseline"
PROSODY_KEY = "prosody"
OPTED_OUT = {"measured": False, "reason": "caller_opt_out"}
"""On a chat whose caller switched prosody off (docs/prosody.md): nothing of their voice is
measured or kept."""


def message_record(item: llm.ChatMessage, chat_id: str, call_id: str) -> NewMessage:
    """A user or assistant `ChatMessage` as the message to store (its prosody follows it:
    `MessageMeasured`)."""
    metrics = item.metrics
    return NewMessage(
        id=item.id,
        chat_id=chat_id,
        call_id=call_id,
        role=item.role if item.role in ("user", "assistant") else "system",
        content=item.text_content,
        interrupted=item.interrupted,
        confidence=item.transcript_confidence,
        started_at=metrics.get("started_speaking_at"),
        ended_at=metrics.get("stopped_speaking_at"),
        created_at=item.created_at,
        item=item.model_dump(mode="json", exclude={"hash"}),
    )


def tool_records(ev: FunctionToolsExecutedEvent, chat_id: str, call_id: str) -> list[NewMessage]:
    """Each tool call and its result, as two `tool` messages in that order."""

    def tool_message(item: llm.FunctionCall | llm.FunctionCallOutput, **fields: Any) -> NewMessage:
        return NewMessage(
            id=item.id,
            chat_id=chat_id,
            call_id=call_id,
            role="tool",
            created_at=item.created_at,
            item=item.model_dump(mode="json"),
            **fields,
        )

    records = []
    for call, output in zip(ev.function_calls, ev.function_call_outputs, strict=False):
        arguments = {"call_id": call.call_id, "name": call.name, "arguments": call.arguments}
        records.append(tool_message(call, tool_name=call.name, tool_call=arguments))
        if output is not None:
            result: dict[str, Any] = {"call_id": output.call_id, "output": output.output}
            result["is_error"] = output.is_error
            name = output.name or call.name
            records.append(tool_message(output, tool_name=name, tool_result=result))
    return records


_Build = Callable[[str, str], list[NewMessage]]
"""The records of what finalized, for a chat and a call row."""


@dataclass(frozen=True, slots=True)
class _Held:
    """Something that finalized while the call switched chats."""

    kind: str
    items: list[llm.ChatItem]
    records: _Build
    filed: asyncio.Future[str]


class Capture:
    """Writes one call's chat, call row and messages."""

    def __init__(
        self,
        state: CallState,
        writer: Writer,
        *,
        prosody: ProsodyStream | None = None,
        agent_name: str | None = None,
        clock: Callable[[], float] = time.time,
        prosody_opt_out: bool = False,
    ) -> None:
        self._state = state
        self._writer = writer
        self._prosody = None if prosody_opt_out else prosody
        self._opted_out = prosody_opt_out
        self._measuring: dict[asyncio.Task[None], asyncio.Future[str]] = {}
        """Prosody being measured, with the chat each message is filed in (once it is)."""
        self._held: list[_Held] | None = None
        self._agent_name = agent_name
        self._clock = clock
        self.on_taken_over: Callable[[str, LostHold], None] | None = None
        """Told the call row that lost its chat, and how, when the store moves one of its
        messages to the call's continuation chat; the call then goes on there (the switcher's
        job)."""

    def call_row(self, chat_id: str, call_id: str, at: float) -> NewCall:
        """The row by which call `call_id` holds `chat_id` (docs/resume.md), naming the journal
        its records go through."""
        state = self._state
        return NewCall(
            id=call_id, chat_id=chat_id, room=state.room, job_id=state.job_id,
            participant=state.owner, started_at=at, journal=self._writer.journal_id,
        )  # fmt: skip

    def attach(self, session: AgentSession[Any]) -> None:
        session.on("conversation_item_added", self._on_item)
        session.on("function_tools_executed", self._on_tools)

    def start_chat(self, *, continues: str | None = None) -> None:
        """The call's new current chat with the row by which the call holds it, in one record
        (an empty chat is dropped when it closes); `continues`: the chat it goes on from after
        a take-over."""
        state, now = self._state, self._clock()
        metadata: dict[str, Any] = {"v": 1}
        if continues is not None:
            metadata["continues"] = continues
        if self._opted_out:
            metadata[PROSODY_KEY] = dict(OPTED_OUT)
        self._submit(
            NewChat(
                id=state.chat_id, owner=state.owner, agent_name=self._agent_name, created_at=now,
                metadata=metadata, holder=self.call_row(state.chat_id, state.call_id, now),
            )
        )  # fmt: skip

    def chat_resumed(self, chat_id: str) -> None:
        """The call went back to an earlier chat: it says so when the caller opted out."""
        if self._opted_out:
            self._submit(ChatMetadataSet(chat_id=chat_id, key=PROSODY_KEY, value=dict(OPTED_OUT)))

    def opt_out_of_prosody(self) -> None:
        """The caller switched prosody off: measure nothing more, and say so on the chat."""
        if not self._opted_out:
            self._opted_out, self._prosody = True, None
            self.chat_resumed(self._state.chat_id)

    async def flush_and_close(self, how: ChatEnd) -> bool | None:
        """Flush what the call said, then close its call row and chat; whether the chat was
        kept (None: not closed). A lost call (`drop`) closes nothing: the chat stays active,
        for the sweeper and resume to find."""
        filed = [task for task, chat in self._measuring.items() if chat.done()]
        if filed:  # what the caller's last words measured belongs to this chat
            await asyncio.wait(filed)
        if how != "lost":
            self._submit(
                CallEnded(call_id=self._state.call_id, end_reason=how, ended_at=self._clock())
            )
        await self._writer.flush()
        if how == "lost":
            return None
        status: ChatStatus = "interrupted" if how == "shutdown" else "closed"
        try:
            kept = await self._writer.store.close_chat(
                self._state.chat_id, status=status, end_reason=how, at=self._clock(),
                call_id=self._state.call_id,
            )  # fmt: skip
        except TakenOver:  # the caller's newer call holds it: theirs to close
            log.info("chat.left_to_another_call", chat_id=self._state.chat_id)
            return None
        except Exception as exc:  # noqa: BLE001 - a store down at hang-up: messages are safe already
            log.error("chat.close_failed", chat_id=self._state.chat_id, error=type(exc).__name__)
            return None
        log.info("chat.closed", chat_id=self._state.chat_id, kept=kept, end_reason=how)
        return kept

    @property
    def holding(self) -> bool:
        """Whether the call is switching chats: what finalizes now waits for `release`."""
        return self._held is not None

    def hold(self) -> None:
        """The call is switching chats (docs/control.md): what finalizes from now on belongs to
        the chat the call is in when the switch is done, so it waits, in order, for `release`.
        Called once the old chat's last turn is over (the agent interrupted)."""
        if self._held is None:
            self._held = []

    def release(self) -> list[llm.ChatItem]:
        """The switch is done: file what finalized during it in the call's chat now, in the
        order it finalized; those items, for the new chat's LLM context."""
        held, self._held = self._held or [], None
        state, items = self._state, []
        for entry in held:
            items += entry.items
            try:
                for record in entry.records(state.chat_id, state.call_id):
                    self._submit(record)
            except Exception as exc:  # noqa: BLE001 - as in _on_item
                log.error("message.rejected", kind=entry.kind, error=type(exc).__name__)
            finally:
                if not entry.filed.done():
                    entry.filed.set_result(state.chat_id)
        return items

    def _file(self, kind: str, items: list[llm.ChatItem], records: _Build) -> asyncio.Future[str]:
        """Submit what finalized, in the call's chat now, or hold it while the call switches;
        the chat it was filed in, once it is."""
        filed = asyncio.get_running_loop().create_future()
        if self._held is not None:
            self._held.append(_Held(kind, items, records, filed))
            return filed
        state = self._state
        filed.set_result(state.chat_id)
        for record in records(state.chat_id, state.call_id):
            self._submit(record)
        return filed

    def _on_item(self, ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if not isinstance(item, llm.ChatMessage) or item.role not in ("user", "assistant"):
            return
        try:
            filed = self._file(
                "message", [item], lambda chat_id, call_id: [message_record(item, chat_id, call_id)]
            )
            if item.role == "user" and self._prosody is not None:
                task = asyncio.create_task(
                    self._measure(self._prosody, item, filed), name="capture.prosody"
                )
                self._measuring[task] = filed
                task.add_done_callback(self._measured)
        except Exception as exc:  # noqa: BLE001 - a session callback must never raise into the call
            log.error("message.rejected", item_id=item.id, error=type(exc).__name__)

    def _on_tools(self, ev: FunctionToolsExecutedEvent) -> None:
        items: list[llm.ChatItem] = [*ev.function_calls]
        items += [output for output in ev.function_call_outputs if output is not None]
        try:
            self._file("tool", items, lambda chat_id, call_id: tool_records(ev, chat_id, call_id))
        except Exception as exc:  # noqa: BLE001 - as above
            log.error("message.rejected", kind="tool", error=type(exc).__name__)

    def _measured(self, task: asyncio.Task[None]) -> None:
        self._measuring.pop(task, None)

    async def _measure(
        self, prosody: ProsodyStream, item: llm.ChatMessage, filed: asyncio.Future[str]
    ) -> None:
        """The prosody of the speech a stored user message came from, scored against the
        caller's baseline, which it then joins; nothing when nothing was heard. Measured as
        it finalizes; scored once it is filed (after a switch, in the new chat)."""
        try:
            heard = await prosody.take(item.text_content or "")
            chat_id = await filed
            if heard is None or self._opted_out:  # (switched off while it was measured)
                return
            state = self._state
            here = state.chat_id == chat_id  # (a chat left meanwhile keeps its baseline)
            measured = state.relate(heard.prosody) if here else heard.prosody
            item.extra["prosody"] = measured  # for whoever reads the session's history
            metrics = item.metrics
            self._submit(
                MessageMeasured(
                    message_id=item.id,
                    prosody=measured,
                    started_at=metrics.get("started_speaking_at") or heard.started_at,
                    ended_at=metrics.get("stopped_speaking_at") or heard.ended_at,
                )
            )
            if here:
                baseline = state.baseline.to_json()
                self._submit(ChatMetadataSet(chat_id=chat_id, key=BASELINE_KEY, value=baseline))
        except Exception as exc:  # noqa: BLE001 - prosody is an extra: the message is stored
            log.error("prosody.failed", item_id=item.id, error=type(exc).__name__)

    def _submit(self, record: Record) -> None:
        future = self._writer.submit(record)
        future.add_done_callback(functools.partial(self._settled, record))

    def _settled(self, record: Record, future: asyncio.Future[None]) -> None:
        if future.cancelled() or (exc := future.exception()) is None:
            return
        if isinstance(exc, TakenOver) and isinstance(record, NewMessage) and record.call_id:
            # Said after a newer call took the chat over: the store filed it in the call's
            # continuation chat, where the call goes on now.
            if self.on_taken_over is not None:
                how: LostHold = "deleted" if isinstance(exc, ChatDeleted) else "taken_over"
                self.on_taken_over(record.call_id, how)
            return
        log.error("message.unsaved", record_id=record.ref, error=type(exc).__name__)
