"""Ids are made by the writer before a write (docs/store.md): `chat_<uuid7 hex>`, `call_<uuid7
hex>`."""

from __future__ import annotations

import re
import time
import uuid

from voxkeep.core.ids import new_call_id, new_chat_id, uuid7


def test_ids_are_uuid7_hex_with_their_prefix() -> None:
    for make, prefix in ((new_chat_id, "chat_"), (new_call_id, "call_")):
        made = make()
        assert re.fullmatch(rf"{prefix}[0-9a-f]{{32}}", made)
        value = uuid.UUID(hex=made.removeprefix(prefix))
        assert (value.version, value.variant) == (7, uuid.RFC_4122)


def test_uuid7_carries_the_time_and_sorts_by_it() -> None:
    before = time.time_ns() // 1_000_000
    first = uuid7()
    time.sleep(0.002)
    second = uuid7()
    assert before <= first.int >> 80 <= time.time_ns() // 1_000_000
    assert first.hex < second.hex
    assert len({uuid7() for _ in range(10_000)}) == 10_000
