"""The protocol's exported JSON Schema (voxkeep/control/schema.py): the copy the TypeScript client
is generated from is the agent's own, and what the agent sends fits it (every reply of the
dispatcher tests is checked too: tests/control/test_dispatcher.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from voxkeep.control.dispatcher import message_json
from voxkeep.control.room import ChatStarted as Started
from voxkeep.control.schema import REPLY, ChatStarted, Prosody, schema_text
from voxkeep.prosody.analysis import analyze
from voxkeep.prosody.baseline import Baseline
from voxkeep.sim.speech import ESPEAK_RATE, espeak
from voxkeep.store.records import Message

ROOT = Path(__file__).resolve().parents[2]
EXPORTED = ROOT / "client" / "schema" / "protocol.schema.json"


def test_the_clients_schema_is_the_one_the_agents_models_export() -> None:
    exported = subprocess.run(
        [sys.executable, "-m", "voxkeep.cli.main", "protocol", "schema"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout  # fmt: skip
    assert exported == schema_text()
    assert EXPORTED.read_text() == exported, "run: voxkeepctl protocol schema > " + str(EXPORTED)
    schema = json.loads(exported)
    assert {"ErrorReply", "ChatStarted", "GetChatOk", "Prosody"} <= set(schema["$defs"])


async def test_a_message_with_measured_prosody_fits_the_schema() -> None:
    samples = (await espeak("I would like to plan a trip to Lisbon.")).astype(np.float32) / 32768
    prosody = Baseline().relate(analyze(samples, ESPEAK_RATE, words=8))
    Prosody.model_validate(prosody)
    message = Message(
        id="m1", chat_id="chat_a", call_id="call_a", seq=1, role="user",
        content="I would like to plan a trip to Lisbon.", tool_name=None, tool_call=None,
        tool_result=None, interrupted=False, confidence=None, started_at=None, ended_at=None,
        created_at=1.0, prosody=prosody, item=None, metadata={},
    )  # fmt: skip
    reply = {"v": 1, "re": "g", "type": "get_chat.ok", "next_before_seq": None,
             "chat": {"id": "chat_a", "title": None, "status": "active", "created_at": 1.0,
                      "updated_at": 1.0, "message_count": 1},
             "messages": [message_json(message, 1000)]}  # fmt: skip
    REPLY.validate_python(reply)


def test_every_chat_started_event_fits_the_schema() -> None:
    for started in (Started("chat_a", False, 0), Started("chat_b", True, 4, reason="taken_over")):
        ChatStarted.model_validate(started.event())
