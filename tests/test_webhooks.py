"""Webhooks (docs/webhooks.md): the store writes each event with the change it tells of, on both
backends; the deliverer signs what it POSTs as the Standard Webhooks specification says (checked
with its Python and TypeScript libraries, as receivers would), retries 500s, timeouts and
unreachable receivers with the same event id, and drops nothing a receiver has not
acknowledged."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from tests.conftest import Serve, chat, msg
from tests.receiver import Delivery, Receiver
from voxkeep.cli.main import main
from voxkeep.jobs import webhooks
from voxkeep.jobs.sweeper import sweep
from voxkeep.store import ANY_OWNER, Store
from voxkeep.store.records import CallEnded, NewCall

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_" + base64.b64encode(b"a test secret of 32 bytes, fixed").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another secret, of 32 bytes too!").decode()


def verified(delivery: Delivery, secret: str = SECRET) -> Any:
    """The event, as the Standard Webhooks library for Python verifies a request (None: it
    refused it)."""
    try:
        return Webhook(secret).verify(delivery.body, delivery.headers)
    except WebhookVerificationError:
        return None


def verified_in_typescript(deliveries: list[Delivery], secret: str = SECRET) -> list[Any]:
    """What the Standard Webhooks library for TypeScript makes of each delivery, on Node.js:
    `{"event": …}` or `{"error": …}`."""
    request = {
        "secret": secret,
        "deliveries": [{"headers": d.headers, "body": d.body.decode()} for d in deliveries],
    }
    done = subprocess.run(
        ["node", str(ROOT / "tests" / "support" / "standard_webhooks.cjs")], cwd=ROOT,
        input=json.dumps(request), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    results: list[Any] = json.loads(done.stdout)
    return results


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


async def test_deliveries_verify_with_the_standard_webhooks_libraries(
    store: Store, serve: Serve
) -> None:
    receiver = await serve(Receiver())
    chat_id, _ = await call_ended_with_a_user_turn(store)
    await deliver_all(webhooks.Deliverer(store, [receiver.url], SECRET), store)
    assert [d.event["type"] for d in receiver.got] == ["chat.started", "call.ended", "chat.ended"]
    for delivery in receiver.got:
        assert verified(delivery) == delivery.event
        assert delivery.headers["webhook-id"] == delivery.event["id"]
        assert delivery.event["data"]["chat_id"] == chat_id
        assert verified(delivery, OTHER_SECRET) is None
        changed = Delivery(delivery.headers, delivery.body.replace(b"alice", b"mallet"), 200)
        assert verified(changed) is None
        replayed = Delivery({**delivery.headers, "webhook-timestamp": "1000000000"},
                            delivery.body, 200)  # fmt: skip
        assert verified(replayed) is None  # an old request replayed
    in_typescript = verified_in_typescript([*receiver.got, changed])
    assert in_typescript[:-1] == [{"event": d.event} for d in receiver.got]
    assert "error" in in_typescript[-1]
    assert "error" in verified_in_typescript(receiver.got[:1], OTHER_SECRET)[0]


async def test_every_time_in_an_event_is_iso_8601_utc(store: Store, serve: Serve) -> None:
    receiver = await serve(Receiver())
    await call_ended_with_a_user_turn(store)
    await deliver_all(webhooks.Deliverer(store, [receiver.url], SECRET), store)
    for delivery in receiver.got:
        event = delivery.event
        times = [event["timestamp"], *(v for k, v in event["data"].items() if k.endswith("_at"))]
        assert len(times) >= 2
        for at in times:
            assert isinstance(at, str) and at.endswith("Z")
            assert abs(datetime.fromisoformat(at).timestamp() - time.time()) < 600


def test_voxkeepctl_makes_a_secret_the_libraries_take(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["webhooks", "secret"]) == 0
    secret = capsys.readouterr().out.strip()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    signed = Webhook(secret).sign("msg_1", datetime.now(UTC), b"{}")
    assert signed.startswith("v1,")
    assert main(["webhooks", "secret"]) == 0
    assert capsys.readouterr().out.strip() != secret


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
    assert len({d.headers["webhook-id"] for d in flaky.got}) == 1
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
