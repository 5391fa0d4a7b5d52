"""The reference web app's server (voxkeep/local/webapp.py): tokens minted on the server for a
room of
their own, a caller's history and no one else's, and a clear error for bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from livekit import api
from pydantic import SecretStr

from tests.conftest import chat, msg
from voxkeep.control.room import RESUME_ATTRIBUTE
from voxkeep.core.settings import Settings
from voxkeep.local.webapp import build_app
from voxkeep.store import Store

Client = TestClient[web.Request, web.Application]
KEY, SECRET = "devkey", "a-secret-of-the-servers-own-32-chars"


@pytest.fixture
async def client(tmp_path: Path, store: Store) -> AsyncIterator[Client]:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text('<div id="root"></div>')
    settings = Settings(
        livekit_url="ws://127.0.0.1:7880",
        livekit_api_key=SecretStr(KEY),
        livekit_api_secret=SecretStr(SECRET),
    )
    async with TestClient(TestServer(build_app(settings, store, dist))) as test_client:
        yield test_client


async def test_a_token_joins_a_room_of_its_own_as_the_caller_and_asks_for_the_resume(
    client: Client,
) -> None:
    first = await (await client.post("/api/token", json={"identity": "alice"})).json()
    again = await client.post("/api/token", json={"identity": "alice", "resume_chat_id": "chat_a"})
    second = await again.json()
    assert first["url"] == "ws://127.0.0.1:7880" and first["room"] != second["room"]
    claims = api.TokenVerifier(KEY, SECRET).verify(second["token"])
    assert claims.identity == "alice"
    assert claims.video is not None and claims.video.room == second["room"]
    assert claims.video.room_join and claims.attributes == {RESUME_ATTRIBUTE: "chat_a"}
    assert api.TokenVerifier(KEY, SECRET).verify(first["token"]).attributes in ({}, None)


async def test_a_token_may_change_its_own_attributes_and_dispatches_a_named_agent(
    tmp_path: Path, store: Store
) -> None:
    settings = Settings(
        livekit_url="ws://127.0.0.1:7880", livekit_api_key=SecretStr(KEY),
        livekit_api_secret=SecretStr(SECRET), agent_name="concierge",
    )  # fmt: skip
    (tmp_path / "assets").mkdir()
    async with TestClient(TestServer(build_app(settings, store, tmp_path))) as named:
        minted = await (await named.post("/api/token", json={"identity": "alice"})).json()
    claims = api.TokenVerifier(KEY, SECRET).verify(minted["token"])
    assert claims.video is not None and claims.video.can_update_own_metadata
    assert claims.room_config is not None
    assert [a.agent_name for a in claims.room_config.agents] == ["concierge"]


async def test_without_an_agent_name_a_token_dispatches_nothing(client: Client) -> None:
    minted = await (await client.post("/api/token", json={"identity": "alice"})).json()
    claims = api.TokenVerifier(KEY, SECRET).verify(minted["token"])
    assert claims.room_config is None or not claims.room_config.agents  # automatic dispatch


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b"{}", b'{"identity": ""}', b'{"identity": 7}',
     b'{"identity": "alice", "resume_chat_id": 5}', b'{"identity": "a\\u0000b"}'],
)  # fmt: skip
async def test_bad_token_requests_get_400_and_say_why(client: Client, body: bytes) -> None:
    json_ = {"Content-Type": "application/json"}
    reply = await client.post("/api/token", data=body, headers=json_)
    assert reply.status == 400
    assert (await reply.json())["error"]


async def test_history_is_the_callers_own(client: Client, store: Store) -> None:
    alices, bobs = chat(owner="alice"), chat(owner="bob")
    await store.write([alices, msg(alices.id, "Lisbon, please"), bobs, msg(bobs.id, "Secret")])
    listed = await (await client.get("/api/chats", params={"identity": "alice"})).json()
    assert [c["id"] for c in listed["chats"]] == [alices.id]
    opened = await client.get(f"/api/chats/{alices.id}", params={"identity": "alice"})
    assert [m["content"] for m in (await opened.json())["messages"]] == ["Lisbon, please"]
    theirs = await client.get(f"/api/chats/{bobs.id}", params={"identity": "alice"})
    assert theirs.status == 404  # another caller's chat is as good as none
    assert (await client.get("/api/chats")).status == 400  # whose?


@pytest.mark.parametrize("host", ["evil.example:8089", "127.0.0.1.evil.example", "", "[::2]"])
async def test_a_request_addressed_to_another_name_is_refused(client: Client, host: str) -> None:
    """DNS rebinding: a page of evil.example, its name resolved to 127.0.0.1, reaches this
    server with its own name as Host; it may neither mint a token nor read anyone's chats."""
    for method, path in (
        ("POST", "/api/token"),
        ("GET", "/api/chats?identity=alice"),
        ("GET", "/"),
    ):
        answer = await client.request(
            method, path, json={"identity": "alice"}, headers={"Host": host}
        )
        assert answer.status == 421
        assert await answer.json() == {
            "error": "this server answers to 127.0.0.1 and localhost only"
        }


@pytest.mark.parametrize("host", ["localhost:5173", "127.0.0.1", "[::1]:8089"])
async def test_loopback_names_are_answered_whatever_the_port(client: Client, host: str) -> None:
    answer = await client.post("/api/token", json={"identity": "alice"}, headers={"Host": host})
    assert answer.status == 200  # (the Vite dev server's proxy keeps its own port)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_a_token_request_that_is_not_declared_json_is_refused(
    client: Client, content_type: str | None
) -> None:
    """A page may POST text/plain or a form to any address without asking (no CORS preflight):
    the server takes JSON only when it says so."""
    headers = {"Content-Type": content_type} if content_type else {}
    answer = await client.post("/api/token", data=b'{"identity": "alice"}', headers=headers)
    assert answer.status == 415
    assert await answer.json() == {"error": "send JSON as application/json"}


async def test_the_app_is_served_at_the_root(client: Client) -> None:
    page = await client.get("/")
    assert page.status == 200 and '<div id="root">' in await page.text()
