"""Structured logs (docs/operations.md): structlog rendered through the standard library.

Our loggers hand each event to `logging` as a record (`render_to_log_kwargs` last) so that
LiveKit's job processes forward it to the worker like any other record, with its fields as
`extra`. Where the agent owns the output (voxkeepctl, simulate), `configure_logging(handler=True)`
installs a handler that renders JSON or console lines from those records.

Events are static names with ids, counts, codes and timings as fields. Never message content,
titles, prosody values, tokens or keys.

Other loggers in the process are kept from writing what people said too (`keep_private`):
LiveKit and its plugins pass transcripts and model input and output as `lk.pii.*` fields,
which are dropped from every record, at every level; and the libraries that would log SQL
parameters, request bodies or headers at DEBUG (aiosqlite, the OpenAI SDK, websockets, hpack)
log from INFO up only.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any, Literal

import structlog

QUIET = ("aiosqlite", "openai", "websockets", "hpack")
"""Loggers whose DEBUG lines carry SQL parameters, request bodies, frames or headers: INFO and
up only, whatever the root's level."""
_original_make_record = logging.Logger.makeRecord


def is_private(field: str) -> bool:
    """A record field that carries what someone said: LiveKit marks them `lk.pii.<name>`."""
    return "pii" in field.split(".")


def _make_private_record(
    self: logging.Logger,
    name: str,
    level: int,
    fn: str,
    lno: int,
    msg: object,
    args: Any,
    exc_info: Any,
    func: str | None = None,
    extra: Mapping[str, object] | None = None,
    sinfo: str | None = None,
) -> logging.LogRecord:
    if extra:
        extra = {key: value for key, value in extra.items() if not is_private(key)}
    return _original_make_record(
        self, name, level, fn, lno, msg, args, exc_info, func, extra, sinfo
    )


def keep_private() -> None:
    """Keep every logger in the process from writing transcripts, model input and output:
    private fields are dropped as each record is made (for loggers that exist and those still
    to come), and the chatty libraries stay at INFO. Idempotent."""
    logging.Logger.makeRecord = _make_private_record  # type: ignore[method-assign]
    for name in QUIET:
        quiet = logging.getLogger(name)
        if quiet.level < logging.INFO:  # (NOTSET included: the root's DEBUG would reach it)
            quiet.setLevel(logging.INFO)


_SHARED: list[structlog.types.Processor] = [
    structlog.stdlib.ExtraAdder(),
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(
    level: str = "INFO",
    fmt: Literal["json", "console"] = "console",
    *,
    handler: bool = False,
) -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.processors.format_exc_info,
            structlog.stdlib.render_to_log_kwargs,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    logging.getLogger("voxkeep").setLevel(level)
    keep_private()
    if not handler:
        return
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    out = logging.StreamHandler(sys.stderr)
    out.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_agent_handler", False)]:
        root.removeHandler(old)
    out._agent_handler = True  # type: ignore[attr-defined]  # marks ours for reconfiguration
    root.addHandler(out)
    root.setLevel(logging.WARNING)
