"""Backend-neutral pieces of queries: page cursors and search terms."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re

from agent.errors import InvalidInput

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_SEARCH_WORDS = 16


def encode_cursor(updated_at: float, chat_id: str) -> str:
    """An opaque cursor for keyset pages ordered by (updated_at DESC, id DESC)."""
    raw = json.dumps([updated_at, chat_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        updated_at, chat_id = json.loads(raw)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidInput("cursor is not one this store gave out") from exc
    if (
        not isinstance(updated_at, int | float)
        or isinstance(updated_at, bool)
        or not math.isfinite(updated_at)
        or not isinstance(chat_id, str)
    ):
        raise InvalidInput("cursor is not one this store gave out")
    return float(updated_at), chat_id


def search_words(query: str) -> list[str]:
    """The words of a search query: every one must match. Operators and quotes are not syntax."""
    words = _WORD.findall(query)
    if not words:
        raise InvalidInput("a search needs at least one word")
    return words[:MAX_SEARCH_WORDS]


def fts_query(query: str) -> str:
    """An FTS5 MATCH expression that finds messages holding every word (each as a prefix-free
    quoted string, so no user input is parsed as FTS5 syntax)."""
    return " AND ".join(f'"{word}"' for word in search_words(query))
