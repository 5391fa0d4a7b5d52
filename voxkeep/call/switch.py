"""The call's current chat (docs/control.md, docs/resume.md): the chat a call starts in, `new_chat`,
`resume_chat`, and moving on when a newer call of the caller takes the chat over. The call's
state, records and LLM context move together, and the caller's app is told through
`on_started`. Whatever the chat, the context changed is that of the agent active at the time:
after a handoff (`session.update_agent`), the new agent's."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import structlog
from livekit.agents import Agent, AgentSession, llm

from voxkeep.call.capture import BASELINE_KEY, Capture, ChatEnd
from voxkeep.call.context import Budget
from voxkeep.call.resume import Loaded, load
from voxkeep.call.state import CallState
from voxkeep.control.room import ChatStarted
from voxkeep.core import metrics
from voxkeep.core.errors import StoreUnavailable, VoxkeepError
from voxkeep.core.ids import continuation_ids, new_call_id
from voxkeep.prosody.baseline import Baseline
from voxkeep.store.base import Hold, LostHold, Store
from voxkeep.store.records import Chat

log = structlog.get_logger(__name__)

INTERRUPT_TIMEOUT_S = 2.0
STORE_PROBE_S = 3.0
"""How long a command that changes the chat waits to learn that the store takes writes."""
GREETING = "This is a new conversation: greet the caller briefly, as if for the first time."
RETURNING = (
    "The caller has come back to this conversation: welcome them back briefly, as someone "
    "you have spoken with before, and offer to pick up where you left off."
)


class ChatSwitcher:
    def __init__(
        self,
        state: CallState,
        capture: Capture,
        session: AgentSession[Any],
        store: Store,
        *,
        budget: Budget,
        load_timeout_s: float,
        on_started: Callable[[ChatStarted], None] | None = None,
        on_loaded: Callable[[Chat, Loaded], None] | None = None,
    ) -> None:
        self._state = state
        self._capture = capture
        self._session = session
        self._first_agent: Agent | None = None
        self._store = store
        self._budget = budget
        self._load_timeout_s = load_timeout_s
        self.on_started = on_started
        self.on_loaded = on_loaded
        self.started = ChatStarted(state.chat_id, resumed=False, message_count=0)
        """The newest `chat.started`: what the caller's app is told when it attaches."""
        self.switching = False
        self._probe: asyncio.Task[Hold] | None = None

    @property
    def chat_id(self) -> str:
        return self._state.chat_id

    async def open(self, requested: str | None, agent: Agent, *, window_s: float) -> ChatStarted:
        """Pick the call's first chat (docs/resume.md): `requested` if the caller owns it; else the
        caller's most recent chat if it is still active, or ended by hang-up, loss or shutdown
        within `window_s`; else a new chat. A resumed chat goes into `agent`'s context, before
        the session starts with it. Choosing, claiming and loading share one time budget: past
        it, or with the store down, the call starts with what it has."""
        self._first_agent = agent
        owner = self._state.owner
        deadline = asyncio.get_running_loop().time() + self._load_timeout_s
        chat: Chat | None = None
        call_id = new_call_id()
        why: str | None = None
        try:
            async with asyncio.timeout_at(deadline):
                if requested is not None:
                    chat = await self._store.get_chat(requested, owner=owner)
                else:
                    chat = await self._store.resume_candidate(
                        owner, ended_since=time.time() - window_s
                    )
                if chat is not None:
                    call = self._capture.call_row(chat.id, call_id, time.time())
                    chat = await self._store.claim_chat(call, owner=owner)
        except (TimeoutError, VoxkeepError) as exc:  # NotFound, or the store slow or down
            chat = None
            why = "timeout" if isinstance(exc, TimeoutError) else exc.code
            log.warning("chat.not_resumed", requested=requested is not None, reason=why)
        if chat is None:
            self._enter_new()  # with a call id of its own: a claim cut short may still land
            reason = why if requested is not None else None
            self.started = ChatStarted(self._state.chat_id, False, 0, reason=reason)
        else:
            await self._resume(chat, call_id, deadline)
            self.started = ChatStarted(chat.id, resumed=True, message_count=chat.message_count)
        log.info("chat.opened", chat_id=self._state.chat_id, resumed=chat is not None)
        metrics.RESUMES.labels(*_outcome(chat is not None, why)).inc()
        return self.started

    async def new_chat(self) -> str | None:
        """Stop the agent mid-sentence, close the chat (kept, or dropped with no user message),
        forget it in the LLM context, start a new chat, and greet as a new conversation.
        Returns the closed chat's id when it was kept."""
        self.switching = True
        try:
            await self._store_takes_writes()
            old = await self._leave("new_chat")
            said_meanwhile = self._enter_new()
            # instructions only, and whatever the caller said while the switch went on
            await self._agent().update_chat_ctx(llm.ChatContext(said_meanwhile))
            self._started(ChatStarted(self._state.chat_id, resumed=False, message_count=0), old)
            self._session.generate_reply(instructions=GREETING)
            return old
        finally:
            self._capture.release()  # (a switch cut short: still filed, in the chat it is in)
            self.switching = False

    async def resume_chat(self, chat_id: str) -> tuple[str | None, int, int]:
        """Close the current chat (end_reason `switched`) and continue `chat_id`, an earlier
        chat of this caller: taken over from any call holding it, active again, its newest
        messages back in the LLM context within the budgets, its prosody baseline back.
        Returns (the closed chat's id if kept, the resumed chat's message count, the messages
        placed in the context)."""
        owner = self._state.owner
        chat = await self._store.get_chat(chat_id, owner=owner)  # NotFound: nothing changes
        self.switching = True
        try:
            if chat_id == self._state.chat_id:  # already here: nothing to change
                in_context = [m for m in self._agent().chat_ctx.messages() if m.role != "system"]
                return None, chat.message_count, len(in_context)
            await self._store_takes_writes()
            old = await self._leave("switched")
            call = self._capture.call_row(chat_id, new_call_id(), time.time())
            try:
                chat = await self._store.claim_chat(call, owner=owner)
            except BaseException:  # the store failed under us: the call never goes chat-less
                self._enter_new()
                self._started(ChatStarted(self._state.chat_id, False, 0), old)
                raise
            deadline = asyncio.get_running_loop().time() + self._load_timeout_s
            loaded = await self._resume(chat, call.id, deadline)
            self._started(ChatStarted(chat_id, resumed=True, message_count=chat.message_count), old)
            return old, chat.message_count, loaded.placed
        finally:
            self._capture.release()
            self.switching = False

    def lost(self, call_id: str, how: LostHold) -> None:
        """The call row `call_id` lost its chat (seen at a write or a heartbeat): to a newer call
        of the caller, or deleted under it. Go on in the call's continuation chat, where the
        store files whatever the call said after that (docs/resume.md). The LLM context stays:
        for the person on this call the conversation simply goes on."""
        if call_id != self._state.call_id:
            return  # already moved on
        old = self._state.chat_id
        chat_id, continuation = continuation_ids(call_id)
        self._state.enter(chat_id, continuation, self._state.baseline)
        self._capture.start_chat(continues=old)
        log.warning("chat.lost", old_chat_id=old, chat_id=chat_id, how=how)
        self._started(ChatStarted(self._state.chat_id, False, 0, reason=how), old)

    async def _resume(self, chat: Chat, call_id: str, deadline: float) -> Loaded:
        """Make the claimed `chat` the call's chat, its history in the LLM context."""
        loaded = await load(self._store, chat, budget=self._budget, deadline=deadline)
        self._state.enter(chat.id, call_id, Baseline.from_json(chat.metadata.get(BASELINE_KEY)))
        self._capture.chat_resumed(chat.id)
        loaded.ctx.items.extend(self._capture.release())  # (said while the chat was loaded)
        await self._agent().update_chat_ctx(loaded.ctx)
        if self.on_loaded is not None:
            self.on_loaded(chat, loaded)
        return loaded

    async def _store_takes_writes(self) -> None:
        """A switch writes, and would wait out a store that is down: find out first, by
        refreshing the call's hold on its chat, and refuse (`unavailable`) before anything
        changes."""
        if self._probe is None or self._probe.done():
            beat = self._store.heartbeat(self._state.call_id, at=time.time())
            self._probe = asyncio.create_task(beat, name="switch.probe")
            self._probe.add_done_callback(_settled)
        # Not wait_for: a transaction once started runs to its end even when cancelled
        # (docs/store.md), so cancelling it would wait out the driver's own timeouts. A probe
        # that has not answered is left to finish on its own, and the command is refused now.
        done, _ = await asyncio.wait({self._probe}, timeout=STORE_PROBE_S)
        if not done:
            raise StoreUnavailable("the store does not answer")
        self._probe.result()  # StoreUnavailable when it answered that it is down

    async def _leave(self, why: ChatEnd) -> str | None:
        """Stop the agent mid-sentence and close the current chat; its id if it was kept."""
        with contextlib.suppress(RuntimeError, TimeoutError):  # not speaking: nothing to stop
            await asyncio.wait_for(self._session.interrupt(), INTERRUPT_TIMEOUT_S)
        old = self._state.chat_id
        self._capture.hold()  # what finalizes from now on belongs to the chat the switch ends in
        kept = await self._capture.flush_and_close(why)
        return old if kept else None

    def _enter_new(self) -> list[llm.ChatItem]:
        """Make a new chat the call's chat, held by a new call row; what was said while the
        call switched to it is filed there (those items)."""
        self._state.enter_new()
        self._capture.start_chat()
        return self._capture.release()

    def _agent(self) -> Agent:
        """The agent whose context is the chat's: the session's active one once it runs."""
        try:
            return self._session.current_agent
        except RuntimeError:  # not started yet: the agent it will start with
            if self._first_agent is None:
                raise
            return self._first_agent

    def _started(self, started: ChatStarted, old: str | None) -> None:
        self.started = started
        log.info("chat.switched", old_chat_id=old, chat_id=started.chat_id)
        if self.on_started is not None:
            self.on_started(started)


def _outcome(resumed: bool, why: str | None) -> tuple[str, str]:
    """The resume metric's (outcome, reason) for how a call chose its chat."""
    if resumed:
        return "resumed", ""
    if why is None:
        return "new", ""
    if why == "timeout":
        return "timed_out", ""
    return "refused", why


def _settled(probe: asyncio.Task[Hold]) -> None:
    """A probe's outcome is read whether or not anyone still waits for it."""
    if not probe.cancelled() and probe.exception() is not None:
        log.info("switch.probe_failed", error=type(probe.exception()).__name__)
