"""The caller's token, as `voxkeepctl token` mints it, on the real LiveKit server: it dispatches
the named agent into the room (a worker with an agent name goes only where it is asked for), and
it lets the caller's app change its own attributes, so the caller switches prosody off mid-call
from their side and nothing more of them is measured. LiveKit's credentials come as flags, as
`lk` takes them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from livekit import rtc
from pydantic import SecretStr

from tests.live.conftest import Join, StartWorker
from tests.live.harness import eventually, voxkeepctl
from tests.support.processes import ModelServer, clean_env
from voxkeep.control.room import PROSODY_ATTRIBUTE
from voxkeep.core.settings import Settings
from voxkeep.local.livekit_server import LocalServer
from voxkeep.local.webapp import build_app
from voxkeep.sim.speech import Voice
from voxkeep.store import ANY_OWNER, Store

MEASURED = "I would like to plan a trip to Lisbon."
UNMEASURED = "What is the weather like there in May?"
OPTED_OUT = {"measured": False, "reason": "caller_opt_out"}


async def test_a_minted_token_dispatches_the_named_agent_and_lets_the_caller_opt_out_mid_call(
    start_worker: StartWorker,
    model_server: ModelServer,
    livekit_server: LocalServer,
    join: Join,
    reader: Store,
    room: str,
    db_url: str,
) -> None:
    for text in (MEASURED, UNMEASURED):
        await model_server.learn(text, Voice())
    await model_server.script(["Lisbon is lovely in spring.", "Mild and mostly sunny."])
    await start_worker(VOXKEEP_AGENT_NAME="concierge")  # explicit dispatch only
    no_livekit_env = clean_env(VOXKEEP_DB_URL=db_url)  # the credentials come as flags
    code, out, err = await voxkeepctl(
        no_livekit_env, "--json", "token", "--room", room, "--identity", "alice",
        "--agent", "concierge", "--agent-metadata", '{"plan": "pro"}',
        "--url", livekit_server.url, "--api-key", livekit_server.api_key,
        "--api-secret", livekit_server.api_secret,
    )  # fmt: skip
    assert (code, err) == (0, "")
    minted = json.loads(out)
    assert (minted["agent"], minted["url"]) == ("concierge", livekit_server.url)
    assert minted["expires_at"].endswith("Z")

    alice = await join("alice", jwt=minted["token"])
    await alice.agent()  # the token's dispatch brought the named agent
    chat_id = await alice.chat_id()
    await alice.turn(MEASURED)

    async def measured() -> bool | None:
        stored = (await reader.messages(chat_id, owner=ANY_OWNER)).messages
        return True if any(m.prosody for m in stored if m.content == MEASURED) else None

    await eventually(measured, 30, "the first turn's prosody")
    await alice.room.local_participant.set_attributes({PROSODY_ATTRIBUTE: "off"})

    async def opted_out() -> bool | None:
        chat = await reader.get_chat(chat_id, owner=ANY_OWNER)
        return True if chat.metadata.get("prosody") == OPTED_OUT else None

    await eventually(opted_out, 30, "the worker to hear the caller switch prosody off")
    await alice.turn(UNMEASURED)
    await alice.leave()

    async def both_stored() -> dict[str | None, dict[str, Any] | None] | None:
        stored = (await reader.messages(chat_id, owner=ANY_OWNER)).messages
        users = {m.content: m.prosody for m in stored if m.role == "user"}
        return users if len(users) == 2 else None

    users = await eventually(both_stored, 30, "both of the caller's turns")
    assert users[MEASURED] is not None  # measured before the switch
    assert users[UNMEASURED] is None  # and nothing after it


async def test_the_web_apps_token_brings_an_agent_that_has_a_name(
    start_worker: StartWorker,
    livekit_server: LocalServer,
    join: Join,
    store: Store,
    tmp_path: Path,
) -> None:
    """A worker with an agent name (as config/compose.postgres.yaml runs it) is dispatched only
    where a token asks for it: the web app's server asks for it."""
    await start_worker(VOXKEEP_AGENT_NAME="concierge")
    settings = Settings(
        livekit_url=livekit_server.url, livekit_api_key=SecretStr(livekit_server.api_key),
        livekit_api_secret=SecretStr(livekit_server.api_secret), agent_name="concierge",
    )  # fmt: skip
    (tmp_path / "app" / "assets").mkdir(parents=True)  # (no pages: only its tokens are used)
    async with TestClient(TestServer(build_app(settings, store, tmp_path / "app"))) as app:
        minted = await (await app.post("/api/token", json={"identity": "alice"})).json()
    alice = await join("alice", jwt=minted["token"], in_room=minted["room"])
    agent = await alice.agent()
    assert agent.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
