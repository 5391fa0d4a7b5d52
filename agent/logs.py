"""Structured logs (docs/operations.md): structlog rendered through the standard library.

Our loggers hand each event to `logging` as a record (`render_to_log_kwargs` last) so that
LiveKit's job processes forward it to the worker like any other record, with its fields as
`extra`. Where the agent owns the output (agentctl, simulate), `configure_logging(handler=True)`
installs a handler that renders JSON or console lines from those records.

Events are static names with ids, counts, codes and timings as fields. Never message content,
titles, prosody values, tokens or keys.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

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
    logging.getLogger("agent").setLevel(level)
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
