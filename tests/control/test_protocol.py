"""Strict parsing of control requests (docs/control.md): every malformed class gets its typed
error."""

from __future__ import annotations

import json

import pytest

from voxkeep.control.limits import REPLAY_WINDOW_S, Replies, TokenBucket
from voxkeep.control.protocol import (
    MAX_PAYLOAD,
    ControlError,
    GetChat,
    ListChats,
    Ping,
    encode,
    ok_reply,
    parse,
)


def req(**fields: object) -> bytes:
    return json.dumps({"v": 1, "id": "r1", **fields}).encode()


def error_of(payload: bytes) -> tuple[str, str | None]:
    with pytest.raises(ControlError) as caught:
        parse(payload)
    reply = caught.value.reply()
    assert reply["type"] == "error" and reply["v"] == 1 and reply["message"]
    return reply["code"], reply["re"]


def test_valid_commands_parse_with_their_defaults() -> None:
    assert parse(req(type="ping")) == Ping(v=1, id="r1", type="ping")
    listed = parse(req(type="list_chats"))
    assert isinstance(listed, ListChats) and (listed.limit, listed.cursor) == (20, None)
    got = parse(req(type="get_chat", chat_id="chat_1", before_seq=5, limit=100))
    assert isinstance(got, GetChat) and (got.before_seq, got.limit) == (5, 100)


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"\xff\xfe{}",  # not UTF-8
        b"[]",
        b'"a string"',
        b"null",
        b'{"v":1,"id":"r1","type":"ping","id":"r2"}',  # duplicate key
        b'{"v":1,"id":"r1","type":"ping","x":NaN}',
        b'{"v":1,"id":"r1","type":"ping","x":-Infinity}',
        b'{"v":1,"id":"r1","type":"ping","x":"a\\u0000b"}',  # NUL
        b'{"v":1,"id":"r1","type":"ping","x":"\\udc00"}',  # unpaired surrogate
        b'{"v":1,"id":"r1","type":"ping","x":' + b"[" * 8 + b"]" * 8 + b"}",  # depth 9
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the parser goes: cut by size first
    ],
)
def test_malformed_payloads_are_bad_requests_or_too_large(payload: bytes) -> None:
    code, re = error_of(payload)
    assert code == ("too_large" if len(payload) > MAX_PAYLOAD else "bad_request")
    assert re is None


def test_nesting_of_exactly_eight_is_allowed() -> None:
    deep = b'{"v":1,"id":"r1","type":"ping","x":' + b"[" * 7 + b"]" * 7 + b"}"
    # the schema (no field "x") refuses it, after the depth check let it through with its id
    assert error_of(deep) == ("bad_request", "r1")
    with pytest.raises(ControlError, match="x: Extra inputs"):
        parse(deep)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"type": "reboot"}, "unknown_type"),
        ({}, "bad_request"),  # no type
        ({"type": 7}, "bad_request"),
        ({"type": "get_chat"}, "bad_request"),  # chat_id missing
        ({"type": "list_chats", "limit": 51}, "bad_request"),
        ({"type": "list_chats", "limit": True}, "bad_request"),  # strict: no bool for int
        ({"type": "list_chats", "limit": "5"}, "bad_request"),
        ({"type": "rename_chat", "chat_id": "c", "title": ""}, "bad_request"),
        ({"type": "rename_chat", "chat_id": "c", "title": "x" * 101}, "bad_request"),
        ({"type": "get_chat", "chat_id": "c", "before_seq": 0}, "bad_request"),
        ({"type": "ping", "extra": 1}, "bad_request"),
    ],
)
def test_schema_errors_name_the_request(fields: dict[str, object], code: str) -> None:
    assert error_of(req(**fields)) == (code, "r1")


def test_a_bad_version_or_id_is_a_bad_request() -> None:
    assert error_of(json.dumps({"v": 2, "id": "r1", "type": "ping"}).encode())[0] == "bad_request"
    assert error_of(json.dumps({"v": 1, "id": "", "type": "ping"}).encode()) == (
        "bad_request", None
    )  # fmt: skip
    assert error_of(json.dumps({"v": 1, "id": "x" * 65, "type": "ping"}).encode())[1] is None


def test_an_oversized_request_is_refused_before_it_is_read() -> None:
    huge = req(type="rename_chat", chat_id="c", title="t" * (MAX_PAYLOAD + 1))
    assert error_of(huge) == ("too_large", None)


def test_replies_have_the_documented_shape() -> None:
    ping = parse(req(type="ping"))
    assert isinstance(ping, Ping)
    assert json.loads(encode(ok_reply(ping, chat_id="chat_1"))) == {
        "v": 1, "re": "r1", "type": "ping.ok", "chat_id": "chat_1"
    }  # fmt: skip


def test_the_token_bucket_allows_the_burst_then_the_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=5, burst=10, clock=lambda: now[0])
    assert [bucket.take() for _ in range(10)] == [0.0] * 10
    assert bucket.take() == pytest.approx(0.2)
    now[0] += 0.2
    assert bucket.take() == 0.0
    assert bucket.take() > 0


def test_replies_are_kept_for_ten_minutes() -> None:
    now = [0.0]
    replies = Replies(clock=lambda: now[0])
    replies.put("r1", {"re": "r1"})
    now[0] += REPLAY_WINDOW_S - 1
    assert replies.get("r1") == {"re": "r1"}
    now[0] += 2
    assert replies.get("r1") is None
