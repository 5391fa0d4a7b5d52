"""`voxkeepctl simulate` (docs/simulate.md): a scripted two-call conversation, offline, end to end;
the second call resumes the chat the first one hung up in (docs/resume.md)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import voxkeep.sim.runner  # noqa: F401 - as `voxkeepctl simulate` preloads it: on the main thread
from voxkeep.cli.main import main
from voxkeep.sim.speech import ESPEAK_RATE, espeak, resample, write_wav
from voxkeep.store import ANY_OWNER, open_store

SCRIPT = """
caller: alice
room: demo
replies: ["Sure, when would you like to go?", "Hello again!", "Done, it is booked.",
          "Welcome back! Shall we go on?"]
calls:
  - steps:
      - say: "I'd like to plan a trip to Lisbon."
      - command: {v: 1, type: ping, id: p1}
      - command: '{"v":1,"id":"x","type":'
        from: mallory
      - command: {v: 1, type: new_chat, id: n1}
      - say: "Book it for Friday please."
        audio: friday.wav
  - steps:
      - say: "What's the weather there?"
        pitch: 85
      - command: {v: 1, type: ping, id: p2}
        via: rpc
    end: drop
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("VOXKEEP_JOURNAL_DIR", str(tmp_path / "journal"))
    monkeypatch.setenv("VOXKEEP_LOG_LEVEL", "WARNING")
    return tmp_path


async def test_a_two_call_script_stores_exactly_what_it_said(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script, trace, db = env / "call.yaml", env / "trace.jsonl", f"sqlite:///{env}/sim.db"
    script.write_text(SCRIPT)
    # a recorded clip instead of synthesis: 16 kHz, as a phone app might save it
    clip = resample(await espeak("Book it for Friday please."), ESPEAK_RATE, 16000)
    (env / "friday.wav").write_bytes(write_wav(clip, 16000))
    argv = ["--db", db, "--json", "simulate", str(script), "--offline", "--trace", str(trace)]
    code = await asyncio.to_thread(main, argv)  # the CLI runs its own event loop
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    first, second = out["calls"]
    assert out["db"] == db
    assert first["call_id"] != second["call_id"]
    assert (first["messages_saved"], second["messages_saved"]) == (5, 3)
    assert len(first["chat_ids"]) == 2  # new_chat moved the call to a second chat
    assert second["chat_ids"] == first["chat_ids"][1:]  # call 2 resumed where call 1 hung up
    # each command answered on its transport, to its sender only
    ping, intruder, new = first["control_replies"]
    saved, current = first["chat_ids"]
    assert new["reply"] == {"v": 1, "re": "n1", "type": "new_chat.ok",
                            "saved_chat_id": saved, "chat_id": current}  # fmt: skip
    assert (ping["to"], ping["via"], ping["reply"]) == (
        "alice", "data", {"v": 1, "re": "p1", "type": "ping.ok", "chat_id": first["chat_ids"][0]}
    )  # fmt: skip
    assert (intruder["to"], intruder["reply"]["code"]) == ("mallory", "forbidden")
    (rpc,) = second["control_replies"]
    assert (rpc["via"], rpc["reply"]["type"], rpc["reply"]["re"]) == ("rpc", "ping.ok", "p2")
    assert first["events"] == [
        {"v": 1, "type": "chat.started", "chat_id": chat_id, "resumed": False, "message_count": 0}
        for chat_id in first["chat_ids"]
    ]
    assert second["events"] == [
        {"v": 1, "type": "chat.started", "chat_id": current, "resumed": True, "message_count": 3}
    ]

    store = await open_store(db)
    try:
        page = await store.list_chats(owner="alice")
        chats = {c.id: c for c in page.chats}
        assert set(chats) == set(first["chat_ids"])
        one, new = (chats[i] for i in first["chat_ids"])
        assert (one.status, one.end_reason) == ("closed", "new_chat")
        assert (new.status, new.end_reason) == ("active", None)  # call 2 dropped: nothing closed it
        said_one = (await store.messages(one.id, owner=ANY_OWNER)).messages
        said_new = (await store.messages(new.id, owner=ANY_OWNER)).messages
    finally:
        await store.aclose()
    assert [(m.role, m.content) for m in said_one] == [
        ("user", "I'd like to plan a trip to Lisbon."),
        ("assistant", "Sure, when would you like to go?"),
    ]
    assert [(m.role, m.content) for m in said_new] == [
        ("assistant", "Hello again!"),  # the greeting of a new conversation
        ("user", "Book it for Friday please."),
        ("assistant", "Done, it is booked."),
        ("assistant", "Welcome back! Shall we go on?"),  # call 2 greets a returning caller
        ("user", "What's the weather there?"),
        ("assistant", "You said: What's the weather there?"),  # the replies ran out: an echo
    ]
    weather = said_new[4]
    assert weather.prosody is not None and said_one[0].prosody is not None
    assert weather.prosody["pitch"]["median_hz"] > said_one[0].prosody["pitch"]["median_hz"]

    requests = [json.loads(line) for line in trace.read_text().splitlines()]
    assert len(requests) == 5  # call 1: two answers and a greeting; call 2: a welcome, an answer
    booked = requests[2]["messages"]
    assert booked[-1] == {"role": "user", "content": "Book it for Friday please."}
    assert "Lisbon" not in json.dumps(booked)  # the new chat's context has none of the first
    welcome = [(m["role"], m["content"]) for m in requests[3]["messages"][1:]]
    assert welcome[:3] == [
        ("assistant", "Hello again!"),
        ("user", "Book it for Friday please."),
        ("assistant", "Done, it is booked."),
    ]  # fmt: skip  (call 2 began with the chat it resumed)


def test_a_broken_script_is_one_line_on_stderr(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = env / "bad.yaml"
    script.write_text("calls:\n  - steps:\n      - say: ''\n")
    assert main(["--db", f"sqlite:///{env}/sim.db", "simulate", str(script)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "calls.0.steps.0" in err
