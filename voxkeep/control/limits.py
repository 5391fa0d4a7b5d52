"""Per-caller limits of the control channel (docs/control.md): a token bucket, and the replies kept
so that a request sent again within 10 minutes gets its first reply and acts once."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

REPLAY_WINDOW_S = 600.0
REPLAY_MAX = 1000  # ids remembered per caller; the oldest go first


class TokenBucket:
    """`rate` tokens a second, holding at most `burst`."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> float:
        """0.0 when a token was taken; otherwise the seconds until one will be there."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


class Replies:
    """First replies by request id, for REPLAY_WINDOW_S."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._kept: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    def get(self, request_id: str) -> dict[str, Any] | None:
        self._expire()
        kept = self._kept.get(request_id)
        return None if kept is None else kept[1]

    def put(self, request_id: str, reply: dict[str, Any]) -> None:
        self._expire()
        self._kept[request_id] = (self._clock(), reply)
        while len(self._kept) > REPLAY_MAX:
            self._kept.popitem(last=False)

    def _expire(self) -> None:
        cutoff = self._clock() - REPLAY_WINDOW_S
        while self._kept and next(iter(self._kept.values()))[0] < cutoff:
            self._kept.popitem(last=False)
