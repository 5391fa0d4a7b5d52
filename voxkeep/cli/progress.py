"""Progress bars for `voxkeepctl`'s long commands (prune, export, backup): on stderr, and only
for a person at a terminal: quiet under `--json` and when stderr is piped or redirected."""

from __future__ import annotations

import argparse
import sys
from types import TracebackType
from typing import Never, TextIO

from tqdm import tqdm


class Progress:
    """A bar that counts up to `total` (None: a running count), or nothing at all."""

    def __init__(
        self, what: str, total: int | None, *, shown: bool, unit: str = "it", scale: bool = False
    ) -> None:
        self._bar: tqdm[Never] | None = (
            tqdm(
                total=total,
                desc=what,
                unit=unit,
                unit_scale=scale,
                file=sys.stderr,
                leave=False,
                dynamic_ncols=True,
            )  # fmt: skip
            if shown
            else None
        )

    def advance(self, n: int) -> None:
        if self._bar is not None and n:
            self._bar.update(n)

    def reach(self, done: int) -> None:
        """Move the bar to `done` (for a count read off something else, a file's size)."""
        if self._bar is not None and done > self._bar.n:
            self._bar.update(done - self._bar.n)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.close()


def wanted(args: argparse.Namespace, stream: TextIO | None = None) -> bool:
    """Whether to draw a bar: a terminal on stderr, and no `--json`."""
    stream = stream or sys.stderr
    return not getattr(args, "json", False) and stream.isatty()
