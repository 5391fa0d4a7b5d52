"""Providers chosen by settings (docs/providers.md): Deepgram, Cartesia and ElevenLabs through
their real LiveKit plugins, against local servers that speak their streaming protocols, and
LiveKit's own turn detector; every call is stored as on OpenAI."""

from __future__ import annotations

from typing import Any

from livekit.agents import inference
from pydantic import SecretStr

from tests.conftest import Serve
from tests.session.conftest import Speak, StartCall, stored
from tests.support.speech_vendors import LocalCartesia, LocalDeepgram, LocalElevenLabs
from voxkeep.sim.audio import MIC_RATE
from voxkeep.sim.call import SimCall
from voxkeep.sim.speech import ESPEAK_RATE, Pcm, espeak, resample
from voxkeep.store import Store
from voxkeep.store.records import Message

LISBON = "I would like to plan a trip to Lisbon."
PORTO = "Now tell me about Porto instead."


async def heard_by(server: LocalDeepgram, text: str) -> Pcm:
    """The caller saying `text`, known to the Deepgram stand-in."""
    samples = resample(await espeak(text), ESPEAK_RATE, MIC_RATE)
    server.recognizer.learn(text, samples, MIC_RATE)
    return samples


async def talk(call: SimCall, clips: list[Pcm], reader: Store) -> list[Message]:
    """Say each clip in turn, hang up, and read back what the call stored."""
    for clip in clips:
        await call.say(clip)
    await call.end("hangup")
    return await stored(reader, call.call.chat_id)


def echoed(*said: str) -> list[tuple[str, str]]:
    """The conversation when the model echoes each turn (the local server's default)."""
    return [turn for text in said for turn in [("user", text), ("assistant", f"You said: {text}")]]


def spoken(server: LocalCartesia | LocalElevenLabs, key: str) -> str:
    """All the text the TTS service was asked to speak."""
    return " ".join("".join(str(m.get(key, "")) for m in server.messages).split())


async def test_deepgram_and_cartesia_calls_are_stored_with_prosody(
    start_call: StartCall, serve: Serve, reader: Store
) -> None:
    deepgram, cartesia = await serve(LocalDeepgram()), await serve(LocalCartesia())
    clips = [await heard_by(deepgram, LISBON), await heard_by(deepgram, PORTO)]
    call = await start_call(
        stt="deepgram",
        deepgram_api_key=SecretStr("dg-key"),
        deepgram_base_url=deepgram.base_url,
        tts="cartesia",
        cartesia_api_key=SecretStr("ca-key"),
        cartesia_base_url=cartesia.base_url,
    )
    messages = await talk(call, clips, reader)
    assert [(m.role, m.content) for m in messages] == echoed(LISBON, PORTO)
    for m in messages[::2]:
        assert m.prosody is not None and 70 < m.prosody["pitch"]["median_hz"] < 200
    # what each service was sent: the caller's audio as Deepgram's plugin streams it, and
    # every word of both answers, with the plugins' defaults and our keys
    first = deepgram.connections[0]
    assert (first.key, first.query["model"], first.query["sample_rate"]) == (
        "Token dg-key", "nova-3", "16000",
    )  # fmt: skip
    assert first.query["encoding"] == "linear16" and deepgram.samples > 16000 * 4
    assert {c.key for c in cartesia.connections} == {"ca-key"}
    assert spoken(cartesia, "transcript") == f"You said: {LISBON} You said: {PORTO}"
    packets = [m for m in cartesia.messages if m.get("transcript", " ").strip()]
    assert {(p["model_id"], p["output_format"]["sample_rate"]) for p in packets} == {
        ("sonic-3", 24000)
    }


async def test_elevenlabs_answers_are_stored_as_played(
    start_call: StartCall, speech: Speak, serve: Serve, reader: Store
) -> None:
    elevenlabs = await serve(LocalElevenLabs())
    clip = await speech(LISBON)
    call = await start_call(
        tts="elevenlabs",
        tts_voice="voice-1",
        eleven_api_key=SecretStr("el-key"),
        eleven_base_url=elevenlabs.base_url,
    )
    messages = await talk(call, [clip], reader)
    assert [(m.role, m.content) for m in messages] == echoed(LISBON)
    (connection,) = elevenlabs.connections
    assert connection.path == "/v1/text-to-speech/voice-1/multi-stream-input"
    assert connection.key == "el-key"
    assert (connection.query["model_id"], connection.query["output_format"]) == (
        "eleven_turbo_v2_5", "pcm_24000",
    )  # fmt: skip
    assert spoken(elevenlabs, "text") == f"You said: {LISBON}"
    assert any(m.get("close_context") for m in elevenlabs.messages)


async def test_livekits_turn_detector_ends_the_turns_of_a_stored_call(
    start_call: StartCall, speech: Speak, reader: Store
) -> None:
    clips = [await speech(LISBON), await speech(PORTO)]
    call = await start_call(turn_detection="model")
    detector: Any = call.session.turn_detection
    assert isinstance(detector, inference.TurnDetector)
    assert detector.model == "turn-detector-v1-mini"  # local: nothing leaves the machine
    messages = await talk(call, clips, reader)
    assert [(m.role, m.content) for m in messages] == echoed(LISBON, PORTO)
