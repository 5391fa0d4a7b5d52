"""How `voxkeepctl` shows things: tables for people, JSON for scripts, ISO 8601 UTC times (the
JSON views of chats and messages are `voxkeep.views.chat`)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from typing import Any

from voxkeep.core.errors import InvalidInput

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> float:
    """`90d`, `12h`, `30m`, `45s`, `2w` as seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise InvalidInput(f"not a duration: {text!r} (use e.g. 90d, 12h, 30m)")
    return float(match[1]) * _UNIT_S[match[2]]


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def one_line(text: str | None, width: int) -> str:
    folded = " ".join((text or "").split())
    return folded if len(folded) <= width else folded[: width - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def emit(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
