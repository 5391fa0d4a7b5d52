"""Webhooks (docs/webhooks.md): the store writes each event with the change it tells of, on both
backends; the deliverer signs what it POSTs, retries 500s, timeouts and unreachable receivers
with the same event id, and drops nothing a receiver has not acknowledged."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Serve, chat, msg
from tests.receiver import Receiver
from voxkeep.jobs import webhooks
from voxkeep.jobs.sweeper import sweep
from voxkeep.store import ANY_OWNER, Store
from voxkeep.store.records import CallEnded, NewCall

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec-test-0123456789"


def documented_verify() -> Any:
    """The `verify` function docs/webhooks.md gives receivers, as they would copy it."""
    text = (ROOT / "docs" / "webhooks.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    scope: dict[str, Any] = {}
    exec(code, scope)  # the documented example, run as a receiver would
    return scope["verify"]


async def pending(store: Store) -> list[tuple[str, dict[str, Any]]]:
    """Every event in the outbox, oldest first, without delivering any (a lease of zero)."""
    events = await store.take_events(now=time.time() + 10_000, lease_s=-10_000, limit=1000)
    return [(e.type, e.data) for e in events]


async def call_ended_with_a_user_turn(store: Store) -> tuple[str, str]:
    c = chat("alice")
    call = NewCall(id="call_w1", chat_id=c.id, room="room-1", job_id="job-1",
                   participant="alice", started_at=time.time())  # fmt: skip
    await store.write([c, call, msg(c.id, "Hi there.", role="assistant"),
                       msg(c.id, "A secret plan for Lisbon.")])  # fmt: skip
    await store.write([CallEnded(call_id=call.id, end_reason="hangup", ended_at=time.time())])
    await store.close_chat(c.id, status="closed", end_reason="hangup", at=time.time())
    return c.id, call.id


async def test_each_change_writes_its_event_in_the_same_transaction(store: Store) -> None:
    chat_id, call_id = await call_ended_with_a_user_turn(store)
    await store.delete_chat(chat_id, owner="alice")
    events = await pending(store)
    assert [kind for kind, _ in events] == ["chat.started", "call.ended", "chat.ended",
                                            "chat.deleted"]  # fmt: skip
    started, ended_call, ended, deleted = (data for _, data in events)
    assert started["chat_id"] == chat_id and started["owner"] == "alice"
    assert ended_call["call_id"] == call_id and ended_call["end_reason"] == "hangup"
    assert (ended_call["room"], ended_call["job_id"]) == ("room-1", "job-1")
    assert ended["end_reason"] == "hangup" and ended["status"] == "closed"
    assert ended["message_count"] == 2 and deleted["message_count"] == 2
    assert "Lisbon" not in json.dumps(events)  # ids and counts, never what was said


async def test_a_chat_nobody_spoke_in_is_never_announced(store: Store) -> None:
    c = chat("alice")
    await store.write([c, msg(c.id, "Hello, how can I help?", role="assistant")])
    kept = await store.close_chat(c.id, status="closed", end_reason="hangup", at=time.time())
    assert not kept
    assert await pending(store) == []


async def test_a_lost_call_ends_through_the_sweeper_with_its_events(store: Store) -> None:
    c = chat("alice")
    call = NewCall(id="call_lost", chat_id=c.id, started_at=time.time() - 600)
    await store.write([c, call, msg(c.id, "Are you there?")])
    await sweep(store, stale_after_s=60, now=time.time() + 600)
    kinds = [(kind, data.get("end_reason")) for kind, data in await pending(store)]
    assert kinds == [("chat.started", None), ("call.ended", "lost"), ("chat.ended", "lost")]


async def test_events_past_their_age_are_dropped_by_the_sweeper(store: Store) -> None:
    await call_ended_with_a_user_turn(store)
    swept = await sweep(store, stale_after_s=60, event_max_age_s=60, now=time.time() + 120)
    assert swept.events_expired == 3
    assert await pending(store) == []


async def deliver_all(deliverer: webhooks.Deliverer, store: Store, limit_s: float = 20) -> None:
    """Run delivery rounds until the outbox is empty."""
    async with aiohttp.ClientSession() as http, asyncio.timeout(limit_s):
        while await pending(store):
            await deliverer.deliver_due(http)
            await asyncio.sleep(0.02)


async def test_deliveries_are_signed_as_the_docs_say_and_verify_with_their_example(
    store: Store, serve: Serve
) -> None:
    receiver = await serve(Receiver())
    chat_id, _ = await call_ended_with_a_user_turn(store)
    await deliver_all(webhooks.Deliverer(store, [receiver.url], SECRET), store)
    verify = documented_verify()
    assert [d.event["type"] for d in receiver.got] == ["chat.started", "call.ended", "chat.ended"]
    for delivery in receiver.got:
        signature = delivery.headers["Voxkeep-Webhook-Signature"]
        assert verify(SECRET, signature, delivery.body)
        assert not verify("another-secret", signature, delivery.body)
        assert not verify(SECRET, signature, delivery.body.replace(b"alice", b"mallet"))
        assert delivery.headers["Voxkeep-Webhook-Id"] == delivery.event["id"]
        assert delivery.headers["Voxkeep-Webhook-Type"] == delivery.event["type"]
        assert delivery.event["data"]["chat_id"] == chat_id
    stale = "t=1000000000," + signature.split(",")[1]
    assert not verify(SECRET, stale, receiver.got[-1].body)  # an old request replayed


async def test_500s_timeouts_and_an_unreachable_receiver_are_retried_under_the_same_id(
    store: Store, serve: Serve
) -> None:
    # the sender waits 2 s for an answer (on a loaded machine a local answer can take a while)
    # and the hanging answer comes after 5 s, when it has given up
    flaky = await serve(Receiver(answers=[500, "hang", 503], hang_s=5.0))
    steady = await serve(Receiver())
    down = await serve(Receiver())
    await down.aclose()  # nothing listens there any more
    c = chat("alice")
    await store.write([c, msg(c.id, "Hello?")])  # one event: chat.started
    deliverer = webhooks.Deliverer(
        store, [flaky.url, steady.url, down.url], SECRET, timeout_s=2.0, retry_s=0.01
    )
    async with aiohttp.ClientSession() as http:
        for _ in range(4):  # 500, hang (timeout), 503, then 200
            (event,) = await store.take_events(now=time.time() + 60, lease_s=0, limit=10)
            await deliverer._attempt(http, event)
    assert [d.status for d in flaky.got] == [500, None, 503, 200]
    assert len({d.headers["Voxkeep-Webhook-Id"] for d in flaky.got}) == 1
    assert len({d.body for d in flaky.got}) == 1  # the same bytes every time
    assert len(steady.got) == 1  # acknowledged once, then left alone
    (left,) = await store.take_events(now=time.time() + 60, lease_s=0, limit=10)
    assert left.attempts == 5 and len(left.acked) == 2  # the unreachable one is still owed it
    assert left.id == flaky.got[0].event["id"]


async def test_a_lease_keeps_an_event_from_a_second_deliverer_until_it_runs_out(
    store: Store,
) -> None:
    c = chat("alice")
    await store.write([c, msg(c.id, "Hello?")])
    now = time.time()
    (first,) = await store.take_events(now=now, lease_s=30, limit=10)
    assert await store.take_events(now=now + 1, lease_s=30, limit=10) == []
    (again,) = await store.take_events(now=now + 31, lease_s=30, limit=10)
    assert again.id == first.id and again.attempts == 2


async def test_the_typescript_clients_fixture_is_what_the_worker_signs() -> None:
    """client/test/fixtures/webhook.json is checked by the TypeScript verifier's tests; it
    must be a request exactly as the worker signs one."""
    fixture = json.loads((ROOT / "client" / "test" / "fixtures" / "webhook.json").read_text())
    body = fixture["body"].encode()
    assert webhooks.sign(fixture["secret"], fixture["timestamp"], body) == fixture["signature"]
    assert documented_verify()(
        fixture["secret"], fixture["signature"], body, tolerance_s=float("inf")
    )


@pytest.mark.parametrize("attempts", [1, 2, 5, 30])
def test_backoff_doubles_from_the_first_wait_up_to_ten_minutes(attempts: int) -> None:
    wait = webhooks.backoff(attempts, 5.0)
    ideal = min(600.0, 5.0 * 2 ** (attempts - 1))
    assert 0.75 * ideal <= wait <= ideal


async def test_a_chat_an_operator_deletes_is_announced_as_its_owners_would_be(store: Store) -> None:
    """Deletion by an operator (any owner) announces the chat like its owner's would."""
    chat_id, _ = await call_ended_with_a_user_turn(store)
    await store.delete_chat(chat_id, owner=ANY_OWNER)
    assert (await pending(store))[-1] == ("chat.deleted", {"chat_id": chat_id, "owner": "alice",
                                                           "message_count": 2})  # fmt: skip
