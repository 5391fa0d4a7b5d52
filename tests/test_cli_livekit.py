"""`agentctl dispatch|rooms|token` (DESIGN §8; issue 6) through the real `livekit-api` client,
against a local server speaking LiveKit's Twirp API that verifies each request's JWT."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator

import pytest
from livekit import api

from agent.cli.main import main
from tests.livekit_twirp import API_KEY, API_SECRET, LocalLiveKit


@pytest.fixture
async def livekit(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LocalLiveKit]:
    server = LocalLiveKit()
    url = await server.start()
    monkeypatch.setenv("LIVEKIT_URL", url.replace("http://", "ws://"))  # as a worker sets it
    monkeypatch.setenv("LIVEKIT_API_KEY", API_KEY)
    monkeypatch.setenv("LIVEKIT_API_SECRET", API_SECRET)
    yield server
    await server.aclose()


async def agentctl(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))  # the CLI runs its own event loop
    out, err = capsys.readouterr()
    return code, out, err


async def test_dispatch_create_sends_room_agent_and_metadata_with_an_admin_token(
    livekit: LocalLiveKit, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await agentctl(
        capsys, "--json", "dispatch", "create", "--room", "demo", "--agent-name", "voice",
        "--metadata", '{"plan": "pro"}', "--chat-id", "chat_0190abc",
    )  # fmt: skip
    assert (code, err) == (0, "")
    (received,) = livekit.received
    assert received.method == "livekit.AgentDispatchService/CreateDispatch"
    assert received.content_type == "application/protobuf"
    assert received.body["room"] == "demo" and received.body["agentName"] == "voice"
    assert json.loads(received.body["metadata"]) == {"plan": "pro", "chat_id": "chat_0190abc"}
    # the JWT verified with the API secret (the server checked it) and carries the right grants
    assert received.claims.video is not None
    assert (received.claims.video.room_admin, received.claims.video.room) == (True, "demo")
    made = json.loads(out)
    (stored,) = livekit.dispatches["demo"]
    assert made["id"] == stored.id and made["agent_name"] == "voice" and made["room"] == "demo"
    assert json.loads(made["metadata"])["chat_id"] == "chat_0190abc"
    assert made["created_at"] == pytest.approx(time.time(), abs=60)


async def test_dispatch_list_and_delete_show_what_the_server_returned(
    livekit: LocalLiveKit, capsys: pytest.CaptureFixture[str]
) -> None:
    livekit.add_room("demo")
    for agent in ("voice", "notes"):
        assert (await agentctl(capsys, "dispatch", "create", "--room", "demo",
                               "--agent-name", agent))[0] == 0  # fmt: skip
    first, second = livekit.dispatches["demo"]
    code, out, _ = await agentctl(capsys, "--json", "dispatch", "list", "--room", "demo")
    assert code == 0
    assert [(d["id"], d["agent_name"]) for d in json.loads(out)["dispatches"]] == [
        (first.id, "voice"), (second.id, "notes"),
    ]  # fmt: skip
    code, out, _ = await agentctl(capsys, "dispatch", "list", "--room", "demo")
    assert code == 0 and first.id in out and "notes" in out.splitlines()[2]  # a table
    code, out, _ = await agentctl(capsys, "dispatch", "delete", "--room", "demo", first.id)
    assert (code, out) == (0, f"deleted dispatch {first.id}\n")
    assert livekit.dispatches["demo"] == [second]
    deleted = livekit.received[-1]
    assert deleted.body == {"dispatchId": first.id, "room": "demo"}


async def test_rooms_list_uses_a_list_grant_and_prints_the_rooms(
    livekit: LocalLiveKit, capsys: pytest.CaptureFixture[str]
) -> None:
    livekit.add_room("demo", participants=2)
    livekit.add_room("lobby")
    code, out, _ = await agentctl(capsys, "--json", "rooms", "list")
    assert code == 0
    assert [(r["name"], r["participants"]) for r in json.loads(out)["rooms"]] == [
        ("demo", 2), ("lobby", 0),
    ]  # fmt: skip
    claims = livekit.received[-1].claims
    assert livekit.received[-1].method == "livekit.RoomService/ListRooms"
    assert claims.video is not None and claims.video.room_list is True
    code, out, _ = await agentctl(capsys, "rooms", "list")
    assert code == 0 and "demo" in out and "lobby" in out


async def test_a_minted_token_verifies_and_carries_identity_room_grants_attributes_expiry(
    livekit: LocalLiveKit, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await agentctl(
        capsys, "--json", "token", "--room", "demo", "--identity", "alice", "--ttl", "30m",
        "--attribute", "agent.resume_chat_id=chat_0190abc", "--attribute", "plan=pro=plus",
    )  # fmt: skip
    assert code == 0
    printed = json.loads(out)
    claims = api.TokenVerifier(API_KEY, API_SECRET).verify(printed["token"])
    assert claims.identity == "alice"
    assert claims.video is not None
    assert (claims.video.room, claims.video.room_join) == ("demo", True)
    assert claims.video.room_admin is not True  # a participant, not an operator
    assert claims.attributes == {"agent.resume_chat_id": "chat_0190abc", "plan": "pro=plus"}
    assert printed["expires_at"] == pytest.approx(time.time() + 1800, abs=60)
    with pytest.raises(Exception, match="Signature"):
        api.TokenVerifier(API_KEY, "another-secret-of-at-least-32-characters").verify(
            printed["token"]
        )
    code, out, _ = await agentctl(capsys, "token", "--room", "demo", "--identity", "bob")
    assert (
        code == 0 and api.TokenVerifier(API_KEY, API_SECRET).verify(out.strip()).identity == "bob"
    )
    assert livekit.received == []  # minting is local: nothing went to the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("case", "argv", "message"),
    [
        ("no credentials", ["rooms", "list"],
         "set LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET"),
        ("unreachable", ["rooms", "list"], "cannot reach the LiveKit server at ws://127.0.0.1:"),
        ("wrong secret", ["dispatch", "list", "--room", "demo"], "refused the credentials"),
        ("unknown room", ["dispatch", "list", "--room", "nope"], "room not found (room nope)"),
        ("unknown dispatch", ["dispatch", "delete", "--room", "demo", "AD_nope"],
         "dispatch not found (room demo)"),
        ("bad metadata", ["dispatch", "create", "--room", "demo", "--metadata", "{plan: pro"],
         "--metadata is not valid JSON"),
        ("metadata not an object", ["dispatch", "create", "--room", "demo", "--metadata", "[1]"],
         "--metadata must be a JSON object"),
        ("bad attribute", ["token", "--room", "demo", "--identity", "a", "--attribute", "plan"],
         "--attribute wants KEY=VALUE"),
        ("bad ttl", ["token", "--room", "demo", "--identity", "a", "--ttl", "soon"],
         "not a duration"),
    ],
)  # fmt: skip
async def test_every_user_error_is_one_line_and_exit_code_1(
    case: str, argv: list[str], message: str, livekit: LocalLiveKit,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    livekit.add_room("demo")
    if case == "no credentials":
        for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
            monkeypatch.setenv(name, "")
    elif case == "unreachable":
        monkeypatch.setenv("LIVEKIT_URL", f"ws://127.0.0.1:{free_port()}")
    elif case == "wrong secret":
        monkeypatch.setenv("LIVEKIT_API_SECRET", "not-the-secret-but-long-enough-to-sign")
    code, out, err = await agentctl(capsys, *argv)
    assert (code, out) == (1, "")
    assert err.startswith("agentctl: ") and err.count("\n") == 1
    assert message in err
    assert API_SECRET not in err
    if case.startswith(("bad", "metadata")):
        assert livekit.received == []  # refused before anything was sent
