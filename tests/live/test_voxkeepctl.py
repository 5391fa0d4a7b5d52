"""`voxkeepctl dispatch|rooms|token` against the real LiveKit server: what the operator is shown,
what the server then holds (read back through LiveKit's own API), and a failure a user can
cause as one line."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from livekit import api

from tests.live.conftest import Join
from tests.live.harness import voxkeepctl
from tests.support.caller import wait_until
from tests.support.processes import free_port
from voxkeep.local.livekit_server import LocalServer


@pytest.fixture
async def lkapi(livekit_server: LocalServer) -> AsyncIterator[api.LiveKitAPI]:
    """LiveKit's own server API client, to read back what voxkeepctl did."""
    client = api.LiveKitAPI(livekit_server.url, livekit_server.api_key, livekit_server.api_secret)
    yield client
    await client.aclose()


async def test_dispatch_create_list_delete_and_rooms_list_change_what_the_server_holds(
    operator_env: dict[str, str], lkapi: api.LiveKitAPI, room: str
) -> None:
    code, out, err = await voxkeepctl(
        operator_env, "--json", "dispatch", "create", "--room", room, "--agent-name", "voice",
        "--metadata", '{"plan": "pro"}', "--chat-id", "chat_0190abc",
    )  # fmt: skip
    assert (code, err) == (0, "")
    made = json.loads(out)
    assert made["id"].startswith("AD_") and (made["agent_name"], made["room"]) == ("voice", room)
    assert json.loads(made["metadata"]) == {"plan": "pro", "chat_id": "chat_0190abc"}
    assert datetime.fromisoformat(made["created_at"]).timestamp() == pytest.approx(
        time.time(), abs=60
    )  # ISO 8601 with its zone, as every --json time
    held = {d.id: d for d in await lkapi.agent_dispatch.list_dispatch(room)}
    assert json.loads(held[made["id"]].metadata) == {"plan": "pro", "chat_id": "chat_0190abc"}

    code, out, _ = await voxkeepctl(operator_env, "--json", "rooms", "list")
    rooms = {r["name"]: r for r in json.loads(out)["rooms"]}
    assert code == 0 and room in rooms  # the dispatch made it
    assert rooms[room]["created_at"].endswith("Z")
    code, out, _ = await voxkeepctl(operator_env, "rooms", "list")
    assert code == 0 and room in out

    code, out, _ = await voxkeepctl(operator_env, "--json", "dispatch", "list", "--room", room)
    listed = {d["id"]: d for d in json.loads(out)["dispatches"]}
    assert code == 0 and set(listed) == set(held)
    assert listed[made["id"]]["agent_name"] == "voice"
    code, out, _ = await voxkeepctl(operator_env, "dispatch", "list", "--room", room)
    assert code == 0 and made["id"] in out and "voice" in out  # a table

    code, out, err = await voxkeepctl(
        operator_env, "--json", "dispatch", "delete", "--room", room, made["id"], "--dry-run"
    )
    assert (code, err) == (0, "")
    assert json.loads(out) == {"dry_run": True, "would_delete": listed[made["id"]]}
    assert made["id"] in {d.id for d in await lkapi.agent_dispatch.list_dispatch(room)}  # kept
    code, out, err = await voxkeepctl(
        operator_env, "dispatch", "delete", "--room", room, made["id"]
    )
    assert (code, out, err) == (0, f"deleted dispatch {made['id']}\n", "")
    assert made["id"] not in {d.id for d in await lkapi.agent_dispatch.list_dispatch(room)}


async def test_a_token_from_voxkeepctl_admits_its_identity_with_its_attributes(
    operator_env: dict[str, str], livekit_server: LocalServer, join: Join, room: str
) -> None:
    code, out, err = await voxkeepctl(
        operator_env, "--json", "token", "--room", room, "--identity", "alice", "--ttl", "30m",
        "--attribute", "voxkeep.resume_chat_id=chat_0190abc", "--attribute", "plan=pro=plus",
    )  # fmt: skip
    assert (code, err) == (0, "")
    printed = json.loads(out)
    expires = datetime.fromisoformat(printed["expires_at"]).timestamp()
    assert expires == pytest.approx(time.time() + 1800, abs=60)
    assert printed["url"] == livekit_server.url
    claims = api.TokenVerifier(livekit_server.api_key, livekit_server.api_secret).verify(
        printed["token"]
    )
    assert claims.video is not None and claims.video.room_admin is not True  # a participant
    assert claims.video.can_update_own_metadata  # who may set their own attributes
    await join("alice", jwt=printed["token"])  # the server admits it...
    bob = await join("bob", microphone=False)
    alice = await wait_until(lambda: bob.room.remote_participants.get("alice"), 10, "alice")
    assert alice.attributes == {"voxkeep.resume_chat_id": "chat_0190abc", "plan": "pro=plus"}

    # ...and refuses one signed with another secret
    forged = {**operator_env, "LIVEKIT_API_SECRET": "not-the-secret-but-long-enough-to-sign"}
    code, out, _ = await voxkeepctl(forged, "token", "--room", room, "--identity", "eve")
    assert code == 0
    with pytest.raises(Exception, match="401|nauthorized|invalid"):
        await join("eve", jwt=out.strip(), microphone=False)


@pytest.mark.parametrize(
    ("case", "argv", "message"),
    [
        ("no credentials", ["rooms", "list"],
         "set LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET"),
        ("unreachable", ["rooms", "list"], "cannot reach the LiveKit server at ws://127.0.0.1:"),
        ("wrong secret", ["dispatch", "list", "--room", "{room}"], "refused the credentials"),
        ("unknown room", ["dispatch", "list", "--room", "nope-{room}"],
         "the LiveKit server has no room nope-"),
        ("unknown room", ["dispatch", "delete", "--room", "nope-{room}", "AD_nope"],
         "the LiveKit server has no room nope-"),
        ("unknown dispatch", ["dispatch", "delete", "--room", "{room}", "AD_nope"],
         "dispatch ID not found (room room-"),
        ("bad metadata", ["dispatch", "create", "--room", "{room}", "--metadata", "{plan: pro"],
         "--metadata is not valid JSON"),
        ("metadata not an object", ["dispatch", "create", "--room", "{room}", "--metadata", "[1]"],
         "--metadata must be a JSON object"),
        ("bad attribute", ["token", "--room", "{room}", "--identity", "a", "--attribute", "plan"],
         "--attribute wants KEY=VALUE"),
        ("bad ttl", ["token", "--room", "{room}", "--identity", "a", "--ttl", "soon"],
         "not a duration"),
    ],
)  # fmt: skip
async def test_every_user_error_is_one_line_and_exit_code_1(
    case: str, argv: list[str], message: str, operator_env: dict[str, str],
    lkapi: api.LiveKitAPI, room: str,
) -> None:  # fmt: skip
    env = dict(operator_env)
    if case in ("wrong secret", "unknown dispatch"):  # a room that exists
        await lkapi.room.create_room(api.CreateRoomRequest(name=room))
    if case == "no credentials":
        for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
            env.pop(name)
    elif case == "unreachable":
        env["LIVEKIT_URL"] = f"ws://127.0.0.1:{free_port()}"
    elif case == "wrong secret":
        env["LIVEKIT_API_SECRET"] = "not-the-secret-but-long-enough-to-sign"
    code, out, err = await voxkeepctl(env, *[a.replace("{room}", room) for a in argv])
    assert (code, out) == (1, "")
    assert err.startswith("voxkeepctl: ") and err.count("\n") == 1
    assert message in err
    assert operator_env["LIVEKIT_API_SECRET"] not in err.removeprefix("voxkeepctl: ").split()
    if case.startswith(("bad", "metadata")):  # refused before anything reached the server
        rooms = await lkapi.room.list_rooms(api.ListRoomsRequest(names=[room]))
        assert list(rooms.rooms) == []
