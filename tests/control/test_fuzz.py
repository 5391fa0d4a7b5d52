"""10,000+ generated payloads at the dispatcher: the malformed classes of docs/control.md and
random mutations of valid commands, 0-70 KiB. Nothing escapes, every packet from the caller
gets a typed error, and nothing is written."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

from tests.conftest import chat, msg
from tests.control.test_dispatcher import StoreSwitcher
from voxkeep.control.dispatcher import Dispatcher, Sender
from voxkeep.control.protocol import ControlError, parse
from voxkeep.store import Store

CODES = {"bad_request", "unknown_type", "too_large", "not_found"}
VALID = [
    {"v": 1, "id": "a1", "type": "ping"},
    {"v": 1, "id": "a2", "type": "new_chat"},
    {"v": 1, "id": "a3", "type": "list_chats", "limit": 5},
    {"v": 1, "id": "a4", "type": "get_chat", "chat_id": "chat_x", "limit": 10},
    {"v": 1, "id": "a5", "type": "rename_chat", "chat_id": "chat_x", "title": "t"},
    {"v": 1, "id": "a6", "type": "delete_chat", "chat_id": "chat_x"},
    {"v": 1, "id": "a7", "type": "resume_chat", "chat_id": "chat_x"},
]


def malformed(rng: random.Random) -> Iterator[bytes]:
    """The classes docs/control.md names, each in several shapes."""
    base = json.dumps(rng.choice(VALID))
    yield base.encode()[: rng.randrange(len(base))]  # cut short
    yield rng.randbytes(rng.randrange(0, 300))  # noise
    yield json.dumps(rng.choice([[], "x", 1, None, True])).encode()  # not an object
    yield base[:-1].encode() + b', "id": "dup"}'  # duplicate key
    yield base[:-1].encode() + rng.choice([b', "x": NaN}', b', "x": Infinity}'])
    yield base[:-1].encode() + b', "x": ' + b"[" * 9 + b"]" * 9 + b"}"  # too deep
    yield base[:-1].encode() + rng.choice([b', "x": "a\\u0000"}', b', "x": "\\ud83d"}'])
    yield base.encode() + b" " * rng.randrange(15 * 1024, 70 * 1024)  # too large
    yield json.dumps({**rng.choice(VALID), "type": rng.choice(["", "PING", "drop", 7])}).encode()
    yield json.dumps(
        {k: v for k, v in rng.choice(VALID).items() if k != rng.choice(["v", "id", "type"])}
    ).encode()


def mutated(rng: random.Random) -> bytes:
    data = bytearray(json.dumps(rng.choice(VALID)).encode())
    for _ in range(rng.randrange(1, 6)):
        pos = rng.randrange(len(data))
        op = rng.randrange(3)
        if op == 0:
            data[pos] = rng.randrange(256)
        elif op == 1:
            del data[pos]
        else:
            data[pos:pos] = rng.randbytes(rng.randrange(1, 4))
    return bytes(data)


async def test_ten_thousand_generated_payloads_get_typed_errors_and_write_nothing(
    store: Store,
) -> None:
    current = chat(owner="alice")
    await store.write([current, msg(current.id, "hello")])
    switcher = StoreSwitcher(store, current.id)
    dispatcher = Dispatcher(store, switcher, "alice", rate=1e9, burst=10**9)
    before = await store.stats()
    rng = random.Random(20261122)
    sent = 0
    while sent < 10_000:
        batch = [*malformed(rng), *(mutated(rng) for _ in range(10))]
        for payload in batch:
            try:
                parse(payload)
            except ControlError:
                pass
            else:
                continue  # a mutation that is still a valid command: not a malformed packet
            reply = await dispatcher.handle(Sender("alice"), payload)
            assert reply is not None and reply["type"] == "error", payload[:80]
            assert reply["code"] in CODES and reply["v"] == 1
            sent += 1
    assert await store.stats() == before
    assert switcher.switches == 0 and switcher.chat_id == current.id
