"""Running it in production, on the real LiveKit server: the worker process's Prometheus metrics
move during a call and name no caller, chat or room; webhooks survive a SIGKILL of the worker
between the change and its delivery, and arrive signed, with the same id on every attempt."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from tests.conftest import Serve
from tests.live.conftest import Join, StartWorker
from tests.live.harness import eventually
from tests.receiver import Receiver
from tests.support.caller import wait_until
from tests.support.processes import ModelServer, free_port
from tests.support.scrape import scrape, value
from tests.test_webhooks import SECRET, pending, verified
from voxkeep.sim.speech import Voice
from voxkeep.store import ANY_OWNER, Store

TURN = "I would like to plan a trip to Lisbon."
REPLY = "Lisbon is lovely in spring."
EVENTS = ["chat.started", "call.ended", "chat.ended"]


async def test_the_workers_metrics_move_during_a_real_call_and_name_nobody(
    start_worker: StartWorker, model_server: ModelServer, join: Join, reader: Store, room: str
) -> None:
    await model_server.learn(TURN, Voice())
    await model_server.script([REPLY])
    port = free_port()
    await start_worker(VOXKEEP_METRICS_PORT=str(port))
    before = await scrape(port)
    assert value(before, "voxkeep_control_requests_total") == 0

    alice = await join("alice")
    chat_id = await alice.chat_id()
    await alice.turn(TURN)
    assert (await alice.command({"v": 1, "id": "p1", "type": "ping"}, via="rpc"))["type"] == (
        "ping.ok"
    )
    assert (await alice.command(b"{not json"))["code"] == "bad_request"

    async def moved() -> dict[Any, float] | None:
        now = await scrape(port)  # from the job process, through the worker's server
        done = value(now, "voxkeep_store_commit_seconds_count", kind="write") >= 2
        return now if done and value(now, "voxkeep_prosody_analysis_seconds_count") >= 1 else None

    during = await eventually(moved, 20, "the call's commits to show in /metrics")
    assert value(during, "voxkeep_resume_total", outcome="new") == 1
    assert value(during, "voxkeep_control_requests_total", type="ping", code="ok") == 1
    assert value(during, "voxkeep_control_requests_total", type="unknown", code="bad_request") == 1
    assert value(during, "voxkeep_store_commit_seconds_count", kind="claim_chat") == 0
    assert value(during, "voxkeep_writer_backlog", place="queue", unit="records") == 0
    assert value(during, "lk_agents_active_job_count") == 1  # LiveKit's own, same registry
    labels = {v for (_, found) in during for _, v in found}
    assert not labels & {chat_id, "alice", room, TURN}
    await alice.leave()
    chat = await reader.get_chat(chat_id, owner=ANY_OWNER)
    assert chat.owner == "alice"


async def test_webhooks_outlive_a_killed_worker_and_keep_their_ids(
    start_worker: StartWorker,
    model_server: ModelServer,
    join: Join,
    reader: Store,
    serve: Serve,
) -> None:
    await model_server.learn(TURN, Voice())
    await model_server.script([REPLY])
    receiver = await serve(Receiver(default=503))  # the team's backend, failing for now
    hooks = {"VOXKEEP_WEBHOOK_URLS": receiver.url, "VOXKEEP_WEBHOOK_SECRET": SECRET,
             "VOXKEEP_WEBHOOK_RETRY_S": "0.2"}  # fmt: skip
    first = await start_worker(**hooks)
    alice = await join("alice")
    chat_id = await alice.chat_id()
    await alice.turn(TURN)  # the call goes on while every delivery fails
    await alice.leave()

    def tried_each() -> bool:
        return {d.event["type"] for d in receiver.got} == set(EVENTS)

    await wait_until(tried_each, 30, "an attempt at each event")
    first.kill()  # between the change and its delivery: SIGKILL, mid-retry
    refused = {d.event["id"]: d.event["type"] for d in receiver.got}
    assert [kind for kind, _ in await pending(reader)] == EVENTS  # still owed, in the store

    receiver.default = 200  # the backend is back
    await start_worker(**hooks)

    async def delivered() -> bool | None:
        return True if len(receiver.acknowledged()) >= 3 and not await pending(reader) else None

    await eventually(delivered, 30, "the other worker to deliver what the first one owed")
    acked = receiver.acknowledged()
    assert sorted(d.event["type"] for d in acked) == sorted(EVENTS)
    assert {d.event["id"]: d.event["type"] for d in acked} == refused  # the same ids
    for delivery in receiver.got:
        assert verified(delivery) == delivery.event
        assert delivery.event["data"]["chat_id"] == chat_id
    ended = next(d.event["data"] for d in acked if d.event["type"] == "chat.ended")
    assert (ended["end_reason"], ended["message_count"]) == ("hangup", 2)
    sent = [datetime.fromisoformat(d.event["timestamp"]).timestamp() for d in acked]
    assert max(sent) <= time.time()


async def test_the_workers_debug_log_carries_nothing_anyone_said(
    start_worker: StartWorker, model_server: ModelServer, join: Join, reader: Store
) -> None:
    secret, answer = "My secret code is bluebird.", "Noted, the bluebird code."
    await model_server.learn(secret, Voice())
    await model_server.script([answer])
    worker = await start_worker(LIVEKIT_LOG_LEVEL="debug", VOXKEEP_LOG_LEVEL="DEBUG")
    alice = await join("alice")
    chat_id = await alice.chat_id()
    await alice.turn(secret)
    await alice.leave()
    await wait_until(lambda: worker.saw("call.ended"), 30, "the call to end")

    stored = (await reader.messages(chat_id, owner=ANY_OWNER)).messages
    assert [m.content for m in stored] == [secret, answer]
    await worker.stop()  # every process's last lines written
    log = worker.log.read_text(errors="replace")
    assert '"level": "DEBUG"' in log or " DEBUG " in log  # LiveKit's and ours, at DEBUG
    assert "conversation_item_added" in log  # the line LiveKit writes each message's text on
    assert "bluebird" not in log
