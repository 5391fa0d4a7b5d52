"""Pure rules of resume (docs/resume.md): which chat a call asks for, and what a summary folds
in."""

from __future__ import annotations

import json

import pytest

from voxkeep.call.context import Budget
from voxkeep.call.resume import continued_call, requested_chat_id
from voxkeep.call.summarize import INPUT_TOKENS, older_part, transcript
from voxkeep.control.room import RESUME_ATTRIBUTE
from voxkeep.store.records import Message, Role


@pytest.mark.parametrize(
    ("metadata", "attributes", "wanted"),
    [
        (json.dumps({"chat_id": "chat_1"}), {}, "chat_1"),
        (
            json.dumps({"chat_id": "chat_1"}),
            {RESUME_ATTRIBUTE: "chat_2"},
            "chat_1",
        ),  # dispatch first
        ("", {RESUME_ATTRIBUTE: "chat_2"}, "chat_2"),
        ("not json", {RESUME_ATTRIBUTE: " chat_2 "}, "chat_2"),
        (json.dumps({"chat_id": 42}), {}, None),
        (json.dumps({"chat_id": "x" * 65}), {}, None),
        (json.dumps(["chat_1"]), {}, None),
        (json.dumps({"operator": "data"}), {RESUME_ATTRIBUTE: ""}, None),
        (None, {}, None),
    ],
)
def test_an_explicit_chat_comes_from_the_dispatch_then_the_callers_attribute(
    metadata: str | None, attributes: dict[str, str], wanted: str | None
) -> None:
    assert requested_chat_id(metadata, attributes) == wanted


@pytest.mark.parametrize(
    ("metadata", "wanted"),
    [
        (json.dumps({"chat_id": "chat_1", "continues": "call_1"}), "call_1"),
        (json.dumps({"chat_id": "chat_1"}), None),  # an operator's dispatch: not a continuation
        (json.dumps({"continues": 7}), None),
        (json.dumps({"continues": ""}), None),
        (json.dumps(["call_1"]), None),
        ("not json", None),
        (None, None),
    ],
)
def test_a_continuation_is_named_by_the_watcher_s_dispatch_only(
    metadata: str | None, wanted: str | None
) -> None:
    assert continued_call(metadata) == wanted


def message(seq: int, content: str, role: Role = "user", tool: str | None = None) -> Message:
    return Message(
        id=f"m{seq}", chat_id="c", call_id=None, seq=seq, role=role, content=content,
        tool_name=tool, tool_call=None, tool_result=None, interrupted=False, confidence=None,
        started_at=None, ended_at=None, created_at=float(seq), prosody=None, item=None,
        metadata={"v": 1},
    )  # fmt: skip


def test_the_summary_folds_in_all_but_the_newest_half_of_the_budget() -> None:
    messages = [message(i, f"line {i}", "user" if i % 2 else "assistant") for i in range(1, 21)]
    older = older_part(messages, Budget(tokens=4000, messages=8))
    assert [m.seq for m in older] == list(range(1, 17))  # the newest 4 stay verbatim


def test_one_summary_request_reads_at_most_its_input_budget_newest_first() -> None:
    long = "word " * 400  # ≈ 500 tokens each
    messages = [message(i, long) for i in range(1, 41)]
    older = older_part(messages, Budget(tokens=1000, messages=60))
    assert older[-1].seq == 39 and len(older) == INPUT_TOKENS // 504


def test_the_transcript_names_speakers_and_tools_and_starts_with_the_old_summary() -> None:
    text = transcript(
        "They planned Rome.",
        [message(1, "Hi"), message(2, "Hello", "assistant"), message(3, "", "tool", "weather")],
    )
    assert text.splitlines() == [
        "Earlier summary: They planned Rome.", "", "Caller: Hi", "Assistant: Hello",
        "(The assistant used the tool weather.)",
    ]  # fmt: skip
