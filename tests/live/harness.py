"""The parts of an end-to-end test on the real LiveKit server: the stand-in model server and the
worker, each a process of its own, and a caller on LiveKit's real rtc client that speaks
espeak-ng speech into a microphone track in real time and talks to the agent over the data
channel and RPC."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiohttp
import numpy as np
from livekit import api, rtc

from agent.sim.speech import ESPEAK_RATE, Pcm, Voice, espeak, resample

RATE = 48000
FRAME = RATE // 100  # 10 ms, as a browser's microphone delivers it
TOPIC = "agent.control"
RPC_METHOD = "agent.control"
STATE_ATTRIBUTE = "lk.agent.state"
CHAT_ATTRIBUTE = "agent.chat_id"
TURN_TIMEOUT_S = 40.0
REPLY_TIMEOUT_S = 10.0
SETTLE_S = 1.0
"""How long after the agent subscribes to the microphone the caller starts to speak."""
ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")
VOICE = Voice()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any setting of ours or LiveKit's or OpenAI's."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "LIVEKIT_", "OPENAI_"))
    }
    return {**env, **extra}


async def wait_until(ready: Callable[[], Any], limit_s: float, what: str) -> Any:
    """Poll `ready` until it returns something truthy; fail naming `what` after `limit_s`."""
    try:
        async with asyncio.timeout(limit_s):
            while not (value := ready()):  # noqa: ASYNC110 - state of other processes, polled
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise TimeoutError(f"timed out after {limit_s:.0f} s waiting for {what}") from None
    return value


async def eventually(probe: Callable[[], Awaitable[T | None]], limit_s: float, what: str) -> T:
    """Await `probe` until it returns something; fail naming `what` after `limit_s`."""
    try:
        async with asyncio.timeout(limit_s):
            while (value := await probe()) is None:  # noqa: ASYNC110 - a store, polled
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise TimeoutError(f"timed out after {limit_s:.0f} s waiting for {what}") from None
    return value


# --- the model server --------------------------------------------------------------------------


class ModelServer:
    """`python -m agent.sim.openai_server` in a process of its own: the OpenAI API the worker's
    plugins call, told which clips to recognize and asked what it received."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self.base_url = ""

    async def start(self) -> str:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent.sim.openai_server",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=clean_env(),
        )  # fmt: skip
        assert self._proc.stdout is not None
        async with asyncio.timeout(60):
            self.base_url = (await self._proc.stdout.readline()).decode().strip()
        assert self.base_url.startswith("http://127.0.0.1:"), self.base_url
        return self.base_url

    async def aclose(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                await asyncio.wait_for(self._proc.wait(), 10)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        root = self.base_url.removesuffix("/v1")
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                method, root + path, json=body, timeout=aiohttp.ClientTimeout(total=30)
            ) as reply,
        ):
            reply.raise_for_status()
            return await reply.json()

    async def learn(self, text: str, voice: Voice) -> None:
        """Recognize `text` when it is heard in this voice (at the microphone's rate)."""
        voice_json = {"pitch": voice.pitch, "rate": voice.rate, "volume": voice.volume}
        await self._call("POST", "/sim/clips", {"text": text, "voice": voice_json, "rate": RATE})

    async def script(self, replies: list[str]) -> None:
        await self._call("POST", "/sim/replies", {"replies": replies})

    async def requests(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self._call("GET", "/sim/requests")
        return found

    async def chat_requests(self) -> list[dict[str, Any]]:
        return [r["body"] for r in await self.requests() if r["path"] == "/v1/chat/completions"]


def said(request: dict[str, Any]) -> list[tuple[str, str]]:
    """The user and assistant turns of an LLM request, as (role, text)."""
    turns = []
    for m in request["messages"]:
        content = m.get("content")
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        if m["role"] in ("user", "assistant") and content:
            turns.append((m["role"], content))
    return turns


# --- agentctl ----------------------------------------------------------------------------------

AGENTCTL = Path(sys.executable).parent / "agentctl"


async def agentctl(env: dict[str, str], *argv: str) -> tuple[int, str, str]:
    """The installed `agentctl`, run as an operator would: exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        AGENTCTL, *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


# --- the worker --------------------------------------------------------------------------------


@dataclass
class Worker:
    """`python -m agent start` (or another command), a process of its own with its own process
    group, its output kept in `log`."""

    env: dict[str, str]
    log: Path
    command: str = "start"
    wrapper: list[str] = field(default_factory=list)
    """Run under another program, e.g. strace."""
    _proc: subprocess.Popen[bytes] | None = None

    async def start(self, limit_s: float = 90.0) -> None:
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(  # noqa: ASYNC220 - a process group of its own
                [*self.wrapper, sys.executable, "-m", "agent", self.command],
                env=self.env,
                cwd=self.log.parent,  # no .env of the developer's
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        await wait_until(
            lambda: self.registered or self._proc is None or self._proc.poll() is not None,
            limit_s,
            "the worker to register with the LiveKit server",
        )
        if not self.registered:
            raise RuntimeError(f"the worker exited with {self.returncode}: see {self.log}")

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    @property
    def registered(self) -> bool:
        return self.saw("worker.registered")

    def events(self) -> list[dict[str, Any]]:
        """The worker's log, one JSON record a line (its other lines left out)."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    found.append(record)
        return found

    def _worker_pid(self) -> int:
        assert self._proc is not None
        if not self.wrapper:
            return self._proc.pid
        children = Path(f"/proc/{self._proc.pid}/task/{self._proc.pid}/children").read_text()
        return int(children.split()[0])

    def events_named(self, message: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("message") == message]

    def saw(self, message: str) -> bool:
        """Whether the worker has logged this event (JSON under `start`, console lines under
        `dev`)."""
        console = f" - {message} "
        return bool(self.events_named(message)) or console in self.log.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group: the worker and its job processes."""
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, sig)

    async def stop(self, limit_s: float = 30.0) -> int:
        """SIGTERM to the worker (under a wrapper, to the wrapped worker), as an orchestrator
        stops it; SIGKILL to what is left after `limit_s`."""
        if self._proc is None:
            return 0
        if self._proc.poll() is None:
            os.kill(self._worker_pid(), signal.SIGTERM)
        try:
            await wait_until(lambda: self.returncode is not None, limit_s, "the worker to stop")
        except TimeoutError:
            self.kill()
        self._proc.wait()
        self.kill()  # any job process left behind
        return self._proc.returncode


# --- the caller --------------------------------------------------------------------------------


@dataclass
class Packet:
    sender: str | None
    topic: str
    payload: Any


class Caller:
    """A person in the room: LiveKit's rtc client, a microphone track that sends 10 ms frames
    in real time (speech when there is some, silence otherwise), and the agent's replies."""

    def __init__(self, url: str, token: str, identity: str) -> None:
        self.url, self.token, self.identity = url, token, identity
        self.room = rtc.Room()
        self.packets: list[Packet] = []
        self.states: list[str] = []
        """The agent's states as they changed (listening, thinking, speaking)."""
        self._speech: asyncio.Queue[tuple[Pcm, asyncio.Future[None]]] = asyncio.Queue()
        self._mic: asyncio.Task[None] | None = None
        self._source: rtc.AudioSource | None = None
        self._heard = asyncio.Event()
        """The agent has subscribed to the microphone."""
        self._heard_at = 0.0
        self.room.on("local_track_subscribed", self._on_subscribed)
        self.room.on("data_received", self._on_data)
        self.room.on("participant_attributes_changed", self._on_attributes)

    async def join(self, *, microphone: bool = True) -> None:
        await self.room.connect(self.url, self.token)
        if not microphone:
            return
        self._source = rtc.AudioSource(RATE, 1)
        track = rtc.LocalAudioTrack.create_audio_track("microphone", self._source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await self.room.local_participant.publish_track(track, options)
        self._mic = asyncio.create_task(self._pump(), name="caller.mic")

    async def leave(self) -> None:
        if self._mic is not None:
            self._mic.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._mic
            self._mic = None
        await self.room.disconnect()

    # --- the agent ---

    def agent_participant(self) -> rtc.RemoteParticipant | None:
        for p in self.room.remote_participants.values():
            if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
                return p
        return None

    async def agent(self, limit_s: float = 30.0) -> rtc.RemoteParticipant:
        found: rtc.RemoteParticipant = await wait_until(
            self.agent_participant, limit_s, "the agent to join"
        )
        return found

    async def chat_id(self, limit_s: float = 30.0, other_than: str | None = None) -> str:
        """The agent's `agent.chat_id` attribute, once it is set (and not `other_than`)."""

        def current() -> str | None:
            agent = self.agent_participant()
            value = agent.attributes.get(CHAT_ATTRIBUTE) if agent else None
            return value if value and value != other_than else None

        found: str = await wait_until(current, limit_s, "the agent's agent.chat_id")
        return found

    def events(self, kind: str = "chat.started") -> list[dict[str, Any]]:
        return [
            p.payload for p in self.packets
            if isinstance(p.payload, dict) and p.payload.get("type") == kind
        ]  # fmt: skip

    async def started(self, count: int, limit_s: float = 30.0) -> dict[str, Any]:
        """The `count`th chat.started event, once it has arrived."""
        await wait_until(lambda: len(self.events()) >= count, limit_s, f"chat.started #{count}")
        return self.events()[count - 1]

    # --- speaking ---

    async def say(self, text: str, voice: Voice = VOICE) -> None:
        """Speak `text` (espeak-ng) into the microphone in real time; returns once it is said."""
        pcm = resample(await espeak(text, voice), ESPEAK_RATE, RATE)
        await asyncio.wait_for(self._heard.wait(), 30)
        # the first ~100 ms of media after a subscription can be lost while the path settles
        # (a clipped first word, seen here); a person waits a moment too before speaking
        await asyncio.sleep(max(0.0, self._heard_at + SETTLE_S - time.monotonic()))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._speech.put((pcm, done))
        await asyncio.wait_for(done, len(pcm) / RATE + 30)

    async def turn(self, text: str, voice: Voice = VOICE) -> None:
        """Speak, then wait until the agent has answered: it spoke and listens again."""
        seen = len(self.states)
        await self.say(text, voice)
        await self.answered(since=seen)

    async def answered(self, since: int = 0, limit_s: float = TURN_TIMEOUT_S) -> None:
        """Wait until the agent, after state number `since`, has spoken and listens again."""

        def done() -> bool:
            later = self.states[since:]
            return "speaking" in later and later[-1] == "listening"

        await wait_until(done, limit_s, "the agent to answer")

    async def _pump(self) -> None:
        """Real-time 10 ms frames: queued speech, else silence (a microphone never stops)."""
        assert self._source is not None
        silence = np.zeros(FRAME, dtype=np.int16)
        pcm, done, pos = None, None, 0
        next_at = time.monotonic()
        while True:
            if pcm is None and not self._speech.empty():
                pcm, done = self._speech.get_nowait()
                pos = 0
            if pcm is not None:
                chunk = pcm[pos : pos + FRAME]
                pos += FRAME
                if len(chunk) < FRAME:
                    chunk = np.concatenate([chunk, silence[: FRAME - len(chunk)]])
                if pos >= len(pcm):
                    pcm = None
                    if done is not None and not done.done():
                        done.set_result(None)
            else:
                chunk = silence
            await self._source.capture_frame(rtc.AudioFrame(chunk.tobytes(), RATE, 1, FRAME))
            next_at += FRAME / RATE
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.5:  # fell far behind (a loaded machine): do not burst to catch up
                next_at = time.monotonic()

    # --- the control channel ---

    async def send(self, payload: dict[str, Any] | bytes, to: str | None = None) -> None:
        """A data packet on the control topic to the agent (or `to`)."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        target = to or (await self.agent()).identity
        await self.room.local_participant.publish_data(
            data, reliable=True, topic=TOPIC, destination_identities=[target]
        )

    async def command(
        self, payload: dict[str, Any] | bytes, *, via: Literal["data", "rpc"] = "data"
    ) -> dict[str, Any]:
        """A control request and the agent's reply to it."""
        if via == "rpc":
            text = payload.decode() if isinstance(payload, bytes) else json.dumps(payload)
            agent = await self.agent()
            reply = await self.room.local_participant.perform_rpc(
                destination_identity=agent.identity,
                method=RPC_METHOD,
                payload=text,
                response_timeout=REPLY_TIMEOUT_S,
            )
            answer: dict[str, Any] = json.loads(reply)
            return answer
        request_id = payload.get("id") if isinstance(payload, dict) else None
        seen = len(self.packets)
        await self.send(payload)

        def reply_packet() -> dict[str, Any] | None:
            """The reply to this request: `re` is its id, or null for a request refused
            before its id was read (raw bytes: the first reply)."""
            for p in self.packets[seen:]:
                reply = p.payload if isinstance(p.payload, dict) and "re" in p.payload else None
                if reply is not None and (request_id is None or reply["re"] in (None, request_id)):
                    return reply
            return None

        found: dict[str, Any] = await wait_until(reply_packet, REPLY_TIMEOUT_S, "a reply")
        return found

    def _on_subscribed(self, publication: rtc.LocalTrackPublication) -> None:
        self._heard_at = time.monotonic()
        self._heard.set()

    def _on_data(self, packet: rtc.DataPacket) -> None:
        try:
            payload: Any = json.loads(packet.data)
        except ValueError:
            payload = bytes(packet.data)
        sender = packet.participant.identity if packet.participant else None
        self.packets.append(Packet(sender, packet.topic or "", payload))

    def _on_attributes(self, changed: dict[str, str], participant: rtc.Participant) -> None:
        state = changed.get(STATE_ATTRIBUTE)
        if state and participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            self.states.append(state)


def token(
    server_key: str,
    server_secret: str,
    room: str,
    identity: str,
    attributes: dict[str, str] | None = None,
) -> str:
    grants = api.VideoGrants(room_join=True, room=room)
    minted = api.AccessToken(server_key, server_secret).with_identity(identity).with_grants(grants)
    if attributes:
        minted = minted.with_attributes(attributes)
    return minted.to_jwt()
