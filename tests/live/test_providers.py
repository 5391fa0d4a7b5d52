"""The worker on other providers by configuration, on the real LiveKit server: Deepgram speech
to text, Cartesia speech and LiveKit's turn detector, in the job process, against local servers
that speak those services' protocols."""

from __future__ import annotations

from tests.conftest import Serve
from tests.live.conftest import Join, StartWorker
from tests.live.test_call import ended, messages_of
from tests.support.processes import ModelServer
from tests.support.speech_vendors import LocalCartesia, LocalDeepgram
from voxkeep.sim.speech import ESPEAK_RATE, espeak, resample
from voxkeep.store import Store

LISBON = "I would like to plan a trip to Lisbon."
ANSWER = "Lisbon is lovely in spring."
HEARD_RATE = 16000
"""The rate Deepgram's plugin streams at."""


async def test_the_worker_runs_a_stored_call_on_the_providers_its_settings_name(
    start_worker: StartWorker,
    model_server: ModelServer,
    serve: Serve,
    join: Join,
    reader: Store,
) -> None:
    deepgram, cartesia = await serve(LocalDeepgram()), await serve(LocalCartesia())
    spoken = resample(await espeak(LISBON), ESPEAK_RATE, HEARD_RATE)
    deepgram.recognizer.learn(LISBON, spoken, HEARD_RATE)
    await model_server.script([ANSWER])
    await start_worker(
        VOXKEEP_STT="deepgram",
        DEEPGRAM_API_KEY="dg-key",
        DEEPGRAM_BASE_URL=deepgram.base_url,
        VOXKEEP_TTS="cartesia",
        CARTESIA_API_KEY="ca-key",
        CARTESIA_BASE_URL=cartesia.base_url,
        VOXKEEP_TURN_DETECTION="model",
    )
    alice = await join("alice")
    chat_id = await alice.chat_id()
    await alice.turn(LISBON)
    await alice.leave()

    assert (await ended(reader, chat_id)).end_reason == "hangup"
    stored = await messages_of(reader, chat_id)
    assert [(m.role, m.content) for m in stored] == [("user", LISBON), ("assistant", ANSWER)]
    assert stored[0].prosody is not None and stored[0].prosody["pitch"]["median_hz"] > 50
    assert [c.key for c in deepgram.connections][:1] == ["Token dg-key"]
    said = " ".join("".join(str(m.get("transcript", "")) for m in cartesia.messages).split())
    assert said == ANSWER
