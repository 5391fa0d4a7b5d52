"""The console's API (docs/console.md) on both backends: tokens and roles, the list's filters,
paging that stays put while chats arrive, owner scoping, messages, prosody, export, health."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import uvicorn
from fastapi import FastAPI

from tests.conftest import chat, msg
from tests.support.caller import wait_until
from tests.support.processes import free_port
from voxkeep.console.api import create_app
from voxkeep.console.auth import ConsoleToken
from voxkeep.console.models import ProsodyOut
from voxkeep.store import Store
from voxkeep.store.records import NewMessage

READ, ADMIN = "read-token-0123456789abcdef", "admin-token-0123456789abcdef"
TOKENS = [ConsoleToken("read", READ), ConsoleToken("admin", ADMIN)]
PROSODY = {
    "v": 1, "pitch": {"median_hz": 180.0}, "loudness": {"mean_db": -22.5},
    "rate": {"words_per_s": 2.5, "source": "transcript"},
    "relative": {"pitch_z": 0.5, "loudness_z": -1.0, "rate_z": 0.25, "baseline_n": 3},
}  # fmt: skip


class Client:
    """The API over loopback, served by uvicorn as `voxkeepctl serve` serves it."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base

    async def call(self, method: str, path: str, **options: Any) -> Reply:
        async with self.http.request(method, self.base + path, **options) as response:
            return Reply(response.status, dict(response.headers), await response.text())

    async def get(self, path: str, **options: Any) -> Reply:
        return await self.call("GET", path, **options)

    async def patch(self, path: str, **options: Any) -> Reply:
        return await self.call("PATCH", path, **options)

    async def delete(self, path: str, **options: Any) -> Reply:
        return await self.call("DELETE", path, **options)


class Reply:
    def __init__(self, status: int, headers: dict[str, str], text: str) -> None:
        self.status_code, self.headers, self.text = status, Caseless(headers), text

    def json(self) -> Any:
        return json.loads(self.text)


class Caseless(dict[str, str]):
    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__({k.lower(): v for k, v in headers.items()})

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


@contextlib.asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[Client]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started, 10, "the console to listen")
        async with aiohttp.ClientSession() as http:
            yield Client(http, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        async with asyncio.timeout(10):
            await task


@pytest.fixture
async def api(store: Store) -> AsyncIterator[Client]:
    async with served(create_app(store, TOKENS)) as client:
        yield client


def as_(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def seeded(store: Store) -> dict[str, str]:
    """alice's Lisbon call (with prosody, a tool call, an interruption) and her Porto chat;
    bob's Lisbon chat; created a day apart."""
    day = 86_400.0
    start = time.time() - 10 * day
    lisbon, porto, bobs = chat("alice", at=start), chat("alice", at=start + day), chat("bob")
    user = NewMessage(id="user1", chat_id=lisbon.id, role="user", content="Plan a trip to Lisbon.",
                      created_at=start + 1, prosody=PROSODY)  # fmt: skip
    await store.write([
        lisbon, porto, bobs, user,
        NewMessage(id="tool1", chat_id=lisbon.id, role="tool", tool_name="weather",
                   tool_call={"city": "Lisbon"}, tool_result={"sky": "sunny"},
                   created_at=start + 2),
        NewMessage(id="cut1", chat_id=lisbon.id, role="assistant", content="Lisbon is lov",
                   interrupted=True, created_at=start + 3),
        msg(porto.id, "And Porto?", at=start + day + 1),
        msg(bobs.id, "Lisbon for bob"),
    ])  # fmt: skip
    return {"lisbon": lisbon.id, "porto": porto.id, "bobs": bobs.id}


async def test_every_route_needs_a_token_and_writes_need_an_admin(
    api: Client, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    ids = await seeded(store)
    with caplog.at_level(logging.DEBUG):
        for path in ("/api/chats", "/api/health", f"/api/chats/{ids['lisbon']}"):
            missing = await api.get(path)
            assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
            assert missing.headers["WWW-Authenticate"] == "Bearer"
            assert (await api.get(path, headers=as_("not-a-known-token-123"))).status_code == 401
            assert (await api.get(path, headers=as_(READ))).status_code == 200
        lisbon = f"/api/chats/{ids['lisbon']}"
        refused = await api.patch(lisbon, json={"title": "Trip"}, headers=as_(READ))
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
        assert (await api.delete(lisbon, headers=as_(READ))).status_code == 403
        renamed = await api.patch(lisbon, json={"title": "Trip"}, headers=as_(ADMIN))
        assert renamed.status_code == 200 and renamed.json()["title"] == "Trip"
        assert (await api.delete(lisbon, headers=as_(ADMIN))).status_code == 204
        assert (await api.get(lisbon, headers=as_(READ))).status_code == 404
    logged = " ".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert READ not in logged and ADMIN not in logged


async def test_a_body_that_does_not_parse_gets_the_typed_error_every_other_refusal_has(
    api: Client, store: Store
) -> None:
    ids = await seeded(store)
    lisbon = f"/api/chats/{ids['lisbon']}"
    for body in (b"\xff", b'{"title": '):  # not UTF-8; JSON cut short
        bad = await api.patch(
            lisbon, data=body, headers={**as_(ADMIN), "Content-Type": "application/json"}
        )
        assert bad.status_code == 400 and bad.json()["error"] == "bad_request", bad.text
    unknown = await api.get("/api/nothing-here", headers=as_(READ))
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
    wrong = await api.call("PUT", lisbon, json={"title": "Trip"}, headers=as_(ADMIN))
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    assert "Allow" in wrong.headers  # (kept from the framework's refusal)
    assert (await store.get_chat(ids["lisbon"], owner="alice")).title != "Trip"


async def test_the_list_filters_by_owner_status_date_and_words(api: Client, store: Store) -> None:
    ids = await seeded(store)
    await store.close_chat(ids["porto"], status="closed", end_reason="hangup", at=time.time())

    async def listed(**params: Any) -> list[str]:
        response = await api.get("/api/chats", params=params, headers=as_(READ))
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["chats"]]

    assert set(await listed()) == set(ids.values())
    assert set(await listed(owner="alice")) == {ids["lisbon"], ids["porto"]}
    assert await listed(status="closed") == [ids["porto"]]
    assert set(await listed(q="lisbon")) == {ids["lisbon"], ids["bobs"]}
    assert await listed(q="lisbon", owner="alice") == [ids["lisbon"]]
    lisbon = await store.get_chat(ids["lisbon"], owner="alice")
    window = {"created_after": lisbon.created_at - 1, "created_before": lisbon.created_at + 1}
    assert await listed(**window) == [ids["lisbon"]]
    bad = await api.get("/api/chats", params={"q": "!!"}, headers=as_(READ))
    assert bad.status_code == 400 and bad.json()["error"] == "bad_request"


async def test_paging_stays_put_while_new_chats_arrive(api: Client, store: Store) -> None:
    first = [chat("alice", at=time.time() - 100 + n) for n in range(7)]
    await store.write([*first, *(msg(c.id, f"chat {n}") for n, c in enumerate(first))])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/api/chats", params=params, headers=as_(READ))).json()
        seen += [c["id"] for c in page["chats"]]
        newer = chat("alice")  # a call starts between two pages
        await store.write([newer, msg(newer.id, "a new call")])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(c.id for c in first)  # each once, none skipped


async def test_an_owner_scoped_query_never_returns_another_owners_data(
    api: Client, store: Store
) -> None:
    ids = await seeded(store)
    bobs = ids["bobs"]
    for path in (f"/api/chats/{bobs}", f"/api/chats/{bobs}/messages",
                 f"/api/chats/{bobs}/prosody", f"/api/chats/{bobs}/export"):  # fmt: skip
        response = await api.get(path, params={"owner": "alice"}, headers=as_(READ))
        assert response.status_code == 404 and response.json()["error"] == "not_found"
        assert "bob" not in response.text
    listed = await api.get("/api/chats", params={"owner": "alice", "q": "bob"}, headers=as_(READ))
    assert listed.json()["chats"] == []


async def test_a_chat_pages_its_messages_with_tools_interruptions_and_prosody(
    api: Client, store: Store
) -> None:
    ids = await seeded(store)
    path = f"/api/chats/{ids['lisbon']}/messages"
    first = (await api.get(path, params={"limit": 2}, headers=as_(READ))).json()
    assert [m["seq"] for m in first["messages"]] == [1, 2] and first["next_after_seq"] == 2
    user, tool = first["messages"]
    assert user["prosody"]["pitch"]["median_hz"] == 180.0 and user["started_at"] is None
    assert (tool["tool_name"], tool["tool_call"], tool["tool_result"]) == (
        "weather", {"city": "Lisbon"}, {"sky": "sunny"},
    )  # fmt: skip
    rest = (await api.get(path, params={"after_seq": 2}, headers=as_(READ))).json()
    assert [(m["seq"], m["interrupted"]) for m in rest["messages"]] == [(3, True)]
    assert rest["next_after_seq"] is None

    curve = (await api.get(f"/api/chats/{ids['lisbon']}/prosody", headers=as_(READ))).json()
    assert ProsodyOut.model_validate(curve).measured is True  # the shape the API documents
    assert curve["points"] == [{
        "seq": 1, "at": user["created_at"], "pitch_hz": 180.0, "loudness_db": -22.5,
        "rate_wps": 2.5, "pitch_z": 0.5, "loudness_z": -1.0, "rate_z": 0.25,
    }]  # fmt: skip


async def test_export_gives_the_clis_formats_as_a_download(api: Client, store: Store) -> None:
    ids = await seeded(store)
    path = f"/api/chats/{ids['lisbon']}/export"
    md = await api.get(path, params={"format": "md"}, headers=as_(READ))
    assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
    assert "Plan a trip to Lisbon." in md.text and "*(interrupted)*" in md.text
    assert f'filename="{ids["lisbon"]}.md"' in md.headers["content-disposition"]
    lines = (await api.get(path, params={"format": "jsonl"}, headers=as_(READ))).text
    assert len(lines.splitlines()) == 4  # the chat, then its three messages
    bad = await api.get(path, params={"format": "pdf"}, headers=as_(READ))
    assert bad.status_code == 400


async def test_health_says_the_store_is_well_and_cors_is_off_unless_configured(
    api: Client, store: Store
) -> None:
    health = (await api.get("/api/health", headers=as_(READ))).json()
    assert health["ok"] is True and health["schema_version"] == health["code_schema_version"]
    asked = await api.get("/api/chats", headers={**as_(READ), "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in asked.headers
    app = create_app(store, TOKENS, cors_origins=["https://ops.example"])
    async with served(app) as client:
        allowed = await client.get(
            "/api/chats", headers={**as_(READ), "Origin": "https://ops.example"}
        )
    assert allowed.headers["access-control-allow-origin"] == "https://ops.example"


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (f"Bearer {READ}", 200),
        (f"bearer \t{READ} \t", 200),  # HTTP's own spaces and tabs around it
        (f"Bearer {READ}\u00a0", 401),  # a no-break space makes it another token
        (f"Bearer \u2003{READ}", 401),
        (f"Basic {READ}", 401),
        (READ, 401),
    ],
)
async def test_the_token_is_compared_exactly_as_sent(api: Client, header: str, status: int) -> None:
    answer = await api.get("/api/health", headers={"Authorization": header})
    assert answer.status_code == status


@pytest.mark.parametrize(
    "raw", [b"[1" + b"0" * 330 + b',"chat_x"]', b'[1e999,"chat_x"]', b'["x","chat_x"]', b"[]"]
)
async def test_a_cursor_the_store_never_gave_out_is_a_typed_400(api: Client, raw: bytes) -> None:
    """Even one that decodes to a number no database column holds (it was a 500)."""
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    answer = await api.get("/api/chats", params={"cursor": cursor}, headers=as_(READ))
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "bad_request",
        "message": "cursor is not one this store gave out",
    }
