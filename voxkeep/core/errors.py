"""The project's errors: one small hierarchy, mapped from foreign errors at each boundary.

    VoxkeepError                  base of everything this package raises on purpose
    ├── ConfigError             a setting is missing or has a bad value (fails at start)
    ├── InvalidInput            a value a caller or operator gave cannot be accepted
    │   └── InvalidText         text with NUL, unpaired surrogates, or over the size limit
    ├── NotFound                no such chat for this owner (another owner's chat included)
    ├── TakenOver               another call of the same caller now holds the chat (docs/resume.md)
    └── StoreError              the store could not do what was asked
        ├── StoreUnavailable    the database cannot be reached or is locked: retry later
        │   └── DiskFull        its disk is full
        └── SchemaError         the database schema is missing, behind or ahead of this code

Each error carries a stable `code` that replies and CLI output use (docs/control.md, error codes).
Driver errors (`sqlite3.Error`, asyncpg's) are translated in the backend module with
`raise ... from exc`; nothing outside `voxkeep/store/<backend>/` sees them.
"""

from __future__ import annotations


class VoxkeepError(Exception):
    """Base of every error this package raises on purpose."""

    code = "internal"


class ConfigError(VoxkeepError):
    code = "config"


class InvalidInput(VoxkeepError):
    code = "bad_request"


class InvalidText(InvalidInput):
    """Text that is refused the same way by every backend (docs/store.md)."""


class NotFound(VoxkeepError):
    code = "not_found"


class TakenOver(VoxkeepError):
    """The call no longer holds its chat: a newer call of the same caller took it over
    (docs/resume.md). What it writes from now on belongs in its continuation chat: a message
    whose write fails with this was stored there."""

    code = "taken_over"


class ChatDeleted(TakenOver):
    """The call's chat was deleted under it (from another device, an erasure, an operator):
    the call goes on in its continuation chat, where a message whose write fails with this was
    stored (docs/resume.md)."""

    code = "deleted"


class StoreError(VoxkeepError):
    code = "internal"


class StoreUnavailable(StoreError):
    """Transient: the database is down, locked or timed out. Safe to retry the same write."""

    code = "unavailable"


class DiskFull(StoreUnavailable):
    """The database's disk is full: retried like any outage, until space returns."""


class SchemaError(StoreError):
    code = "schema"
