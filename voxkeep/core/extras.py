"""The optional parts of the package (pyproject.toml's extras, docs/operations.md#install): a
command that needs one this install lacks fails in one line that names the extra and the pip
command that adds it, never with a traceback from deep inside an import."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from voxkeep.core.errors import ConfigError

MODULES = {
    "postgres": {"asyncpg"},
    "console": {"fastapi", "starlette", "uvicorn"},
    "sim": {"yaml"},
    "local": {"yaml"},
}
"""The top-level modules each extra brings."""


class MissingExtra(ConfigError):
    """What was asked for needs an extra that is not installed."""

    def __init__(self, extra: str, what: str) -> None:
        super().__init__(f"{what} needs voxkeep[{extra}]: pip install 'voxkeep[{extra}]'")
        self.extra = extra


@contextmanager
def needs(extra: str, what: str) -> Iterator[None]:
    """Imports in this block that fail for lack of `extra` raise `MissingExtra`, naming `what`
    needs it; any other import error goes on as it was."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] in MODULES[extra]:
            raise MissingExtra(extra, what) from None
        raise
