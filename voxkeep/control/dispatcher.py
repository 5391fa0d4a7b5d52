"""The one dispatcher behind both control transports (docs/control.md).

`handle(sender, payload)` returns the reply to send back, or None when the packet is ignored.
In order: who sent it (only the caller this session serves), the caller's token bucket, strict
parsing, the reply cache (a repeated id gets its first reply and acts once), then the command,
one at a time per caller in arrival order. No payload makes it raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from livekit import rtc
from livekit.agents.telemetry import tracer

from voxkeep.control.limits import Replies, TokenBucket
from voxkeep.control.protocol import (
    MAX_PAYLOAD,
    AnyRequest,
    ControlError,
    DeleteChat,
    EraseMe,
    GetChat,
    ListChats,
    NewChatCommand,
    Ping,
    RenameChat,
    ResumeChat,
    encode,
    error_reply,
    ok_reply,
    parse,
)
from voxkeep.core import metrics
from voxkeep.core.errors import InvalidInput, NotFound, StoreUnavailable
from voxkeep.store.base import Store
from voxkeep.store.records import Chat, Message
from voxkeep.views.chat import chat_brief, message_brief

log = structlog.get_logger(__name__)

REJECTION_RATE = 1.0
REJECTION_BURST = 5
"""rate_limited replies are limited too: past this, a flood is dropped without a word."""
MAX_WAITING = 16
"""Commands queued behind the running one before the next is refused as `busy`."""
ERASE_CONFIRM_S = 60.0
"""How long the caller's app has to confirm an erasure (docs/control.md)."""
CUT_MARK = "…"
CAUGHT_UP_S = 2.0
"""How long a read waits for the call's own messages to reach the store (docs/control.md)."""


@dataclass(frozen=True, slots=True)
class Sender:
    """Who a packet is from, as the SFU asserts it. `identity` None: the server API."""

    identity: str | None
    kind: int = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD
    hidden: bool = False


class Switcher(Protocol):
    """What the call does when a command changes its current chat."""

    @property
    def chat_id(self) -> str: ...

    @property
    def switching(self) -> bool:
        """The current chat is being changed outside a command (say, a resume at call start)."""
        ...

    async def new_chat(self) -> str | None:
        """Close the current chat (kept, or dropped when empty) and start a new one; return
        the kept chat's id or None."""
        ...

    async def resume_chat(self, chat_id: str) -> tuple[str | None, int, int]:
        """Make `chat_id` current: (the closed chat's id or None, its message count, the
        messages placed in the LLM context)."""
        ...


def message_json(m: Message, max_content: int) -> dict[str, Any]:
    """A message as `get_chat` replies with it: its content cut to `max_content` bytes."""
    out = message_brief(m)
    if m.content is not None and len(m.content) > max_content // 4:  # may be over in UTF-8
        encoded = m.content.encode("utf-8")
        if len(encoded) > max_content:
            out["content"] = encoded[:max_content].decode("utf-8", "ignore") + CUT_MARK
            out["truncated"] = True
    return out


def fits(reply: dict[str, Any]) -> bool:
    return len(encode(reply)) <= MAX_PAYLOAD


class Dispatcher:
    def __init__(
        self,
        store: Store,
        switcher: Switcher,
        caller: str,
        *,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        caught_up: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """`caught_up` waits until every message the call has finalized so far is committed
        (the call's writer's `flush`): reads wait for it, so they see what was just said."""
        self._store = store
        self._caught_up = caught_up
        self._switcher = switcher
        self._caller = caller
        self._bucket = TokenBucket(rate, burst, clock)
        self._rejections = TokenBucket(REJECTION_RATE, REJECTION_BURST, clock)
        self._replies = Replies(clock)
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._clock = clock
        self._erasure: tuple[str, float] | None = None  # the confirm token offered, its expiry

    async def handle(self, sender: Sender, payload: bytes) -> dict[str, Any] | None:
        """The reply for `sender`, or None to say nothing. Never raises. Each command is
        counted by type and reply code (docs/metrics.md), and traced when a tracer is set."""
        with tracer.start_as_current_span("voxkeep.control.command") as span:
            kind = "unknown"  # until the payload parses
            try:
                kind, reply = await self._handle(sender, payload)
            except Exception as exc:  # noqa: BLE001 - the task boundary: a reply, never a crash
                log.error("control.failed", error=type(exc).__name__)
                reply = error_reply(None, "internal", "internal error")
            code = "none" if reply is None else reply.get("code", "ok")
            span.set_attributes({"voxkeep.control.type": kind, "voxkeep.control.code": code})
            metrics.CONTROL_REQUESTS.labels(type=kind, code=code).inc()
            return reply

    async def _handle(self, sender: Sender, payload: bytes) -> tuple[str, dict[str, Any] | None]:
        """The command's type ("unknown" when it was not read) and the reply."""
        if not self._from_caller(sender):
            log.warning("control.rejected", code="forbidden", size=len(payload))
            # a person in the room hears why; agents, hidden observers and the API do not
            if sender.identity is None or sender.hidden or self._is_agent(sender):
                return "unknown", None
            return "unknown", error_reply(
                None, "forbidden", "only the caller may command this agent"
            )
        retry = self._bucket.take()
        if retry > 0:
            if self._rejections.take() > 0:
                return "unknown", None
            log.info("control.rejected", code="rate_limited")
            return "unknown", error_reply(
                None, "rate_limited", "too many commands", retry_after_ms=int(retry * 1000) + 1
            )
        try:
            request = parse(payload)
        except ControlError as exc:
            log.info("control.rejected", code=exc.code, size=len(payload))
            return "unknown", exc.reply()
        if self._waiting >= MAX_WAITING:
            return request.type, error_reply(request.id, "busy", "too many commands waiting")
        self._waiting += 1
        try:
            async with self._lock:
                return request.type, await self._run(request)
        finally:
            self._waiting -= 1

    def _from_caller(self, sender: Sender) -> bool:
        return sender.identity == self._caller and not sender.hidden and not self._is_agent(sender)

    @staticmethod
    def _is_agent(sender: Sender) -> bool:
        return sender.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT

    async def _run(self, request: AnyRequest) -> dict[str, Any]:
        if (first := self._replies.get(request.id)) is not None:
            return first
        if self._switcher.switching:
            return error_reply(request.id, "busy", "the chat is being changed")
        started = time.perf_counter()
        try:
            reply = await self._command(request)
        except NotFound:
            reply = error_reply(request.id, "not_found", "no such chat")
        except InvalidInput as exc:
            reply = error_reply(request.id, "bad_request", str(exc)[:200])
        except StoreUnavailable:
            log.warning("control.rejected", code="unavailable", type=request.type)
            return error_reply(request.id, "unavailable", "history is unavailable, try again")
        self._replies.put(request.id, reply)
        log.info(
            "control.handled",
            type=request.type,
            outcome=reply["type"],
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return reply

    async def _command(self, request: AnyRequest) -> dict[str, Any]:
        owner = self._caller
        match request:
            case Ping():
                return ok_reply(request, chat_id=self._switcher.chat_id)
            case NewChatCommand():
                saved = await self._switcher.new_chat()
                return ok_reply(request, saved_chat_id=saved, chat_id=self._switcher.chat_id)
            case ListChats():
                await self._catch_up()
                page = await self._store.list_chats(
                    owner=owner, limit=request.limit, cursor=request.cursor
                )
                chats = [chat_brief(c) for c in page.chats]
                reply = ok_reply(request, chats=chats, next_cursor=page.next_cursor)
                if fits(reply):
                    return reply
                while not fits(reply) and len(chats) > 1:  # long titles in many scripts
                    chats.pop()
                    reply = ok_reply(request, chats=chats, next_cursor=None)
                # the cursor after the last chat kept: the same page, as long as what was kept
                shorter = await self._store.list_chats(
                    owner=owner, limit=len(chats), cursor=request.cursor
                )
                return ok_reply(request, chats=chats, next_cursor=shorter.next_cursor)
            case GetChat():
                await self._catch_up()
                chat = await self._store.get_chat(request.chat_id, owner=owner)
                history = await self._store.messages(
                    request.chat_id, owner=owner, before_seq=request.before_seq,
                    limit=request.limit,
                )  # fmt: skip
                return self._fit_messages(request, chat, history.messages, history.next_before_seq)
            case ResumeChat():
                await self._store.get_chat(request.chat_id, owner=owner)  # owned, or NotFound
                saved, count, context = await self._switcher.resume_chat(request.chat_id)
                return ok_reply(
                    request, chat_id=request.chat_id, saved_chat_id=saved,
                    message_count=count, context_messages=context,
                )  # fmt: skip
            case RenameChat():
                chat = await self._store.rename_chat(request.chat_id, request.title, owner=owner)
                return ok_reply(request, chat_id=chat.id, title=chat.title)
            case DeleteChat():
                await self._store.get_chat(request.chat_id, owner=owner)  # owned, or NotFound
                if request.chat_id == self._switcher.chat_id:
                    await self._switcher.new_chat()  # deleting the current chat starts a new one
                await self._store.delete_chat(request.chat_id, owner=owner)
                return ok_reply(request, chat_id=request.chat_id)
            case EraseMe():
                return await self._erase(request)

    async def _erase(self, request: EraseMe) -> dict[str, Any]:
        """The caller's whole history, in two steps the app can put a question between: the
        first offers a token, the second (with it, once, in time) erases. The call goes on in a
        new, empty chat."""
        owner = self._caller
        if request.confirm is None:
            count = await self._count_chats()
            token = secrets.token_urlsafe(16)
            self._erasure = (token, self._clock() + ERASE_CONFIRM_S)
            return ok_reply(
                request, erased=False, chat_count=count, confirm=token,
                expires_in_ms=int(ERASE_CONFIRM_S * 1000),
            )  # fmt: skip
        offered, self._erasure = self._erasure, None  # one use, right or wrong
        if (
            offered is None
            or offered[1] < self._clock()
            or not secrets.compare_digest(offered[0], request.confirm)
        ):
            return error_reply(
                request.id, "expired", "no such confirmation: ask with erase_me again"
            )
        await self._switcher.new_chat()
        count = await self._store.erase_owner(owner, keep=self._switcher.chat_id)
        log.info("control.erased", chats=count)
        return ok_reply(request, erased=True, chat_count=count, chat_id=self._switcher.chat_id)

    async def _count_chats(self) -> int:
        count, cursor = 0, None
        while True:
            page = await self._store.list_chats(owner=self._caller, limit=50, cursor=cursor)
            count += len(page.chats)
            if page.next_cursor is None:
                return count
            cursor = page.next_cursor

    async def _catch_up(self) -> None:
        """Read your own writes: a read sees every message the call finalized before it (an
        app refreshes its transcript the moment the agent is done speaking, while the reply is
        still on its way to the store). Bounded: with the store slow or down, the read goes on
        after `CAUGHT_UP_S` and answers with what is there, or its error."""
        if self._caught_up is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CAUGHT_UP_S):
                await self._caught_up()

    def _fit_messages(
        self, request: GetChat, chat: Chat, messages: list[Message], next_before: int | None
    ) -> dict[str, Any]:
        """Newest messages first to go when the page is too big; long contents are cut."""
        max_content = MAX_PAYLOAD // 2
        kept = list(messages)
        while True:
            items = [message_json(m, max_content) for m in kept]
            before = next_before if len(kept) == len(messages) else (kept[0].seq if kept else None)
            reply = ok_reply(request, chat=chat_brief(chat), messages=items, next_before_seq=before)
            if fits(reply):
                return reply
            if len(kept) > 1:
                kept = kept[1:]  # drop the oldest; the client pages back for it
            else:
                max_content //= 2
