"""`voxkeepctl serve`: the operator's console, an HTTP API and its pages over the store
(docs/console.md). On 127.0.0.1 unless told otherwise; every API route needs a token from
`VOXKEEP_CONSOLE_TOKENS`. No access log: a URL can hold an owner or the words searched for."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from voxkeep.core.errors import ConfigError
from voxkeep.core.extras import needs
from voxkeep.core.settings import load_settings
from voxkeep.store import Store

PAGES = Path(__file__).resolve().parents[1] / "console" / "pages"
"""The console's built pages: package data of a wheel; in a checkout, `npm run build` (which
scripts/bootstrap runs) writes them."""
GRACE_S = 5
"""At SIGTERM or Ctrl-C, how long requests in flight may finish (a browser's idle keep-alive
connections do not hold it up)."""


def add_parsers(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("serve", help="the console: a web UI and HTTP API over the history")
    p.add_argument("--host", help="the interface (default VOXKEEP_CONSOLE_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, help="the port (default VOXKEEP_CONSOLE_PORT, 8090)")
    p.set_defaults(run=serve)


async def serve(store: Store, args: argparse.Namespace) -> int:
    with needs("console", "voxkeepctl serve"):
        import uvicorn  # only here: every other voxkeepctl command starts without a web stack

        from voxkeep.console.api import create_app
        from voxkeep.console.auth import parse_tokens

    settings = load_settings()
    tokens = parse_tokens(settings.console_tokens.get_secret_value())
    if not tokens:
        raise ConfigError(
            "set VOXKEEP_CONSOLE_TOKENS (read:TOKEN,admin:TOKEN) before serving the console"
        )
    origins = [o.strip() for o in settings.console_cors_origins.split(",") if o.strip()]
    pages = PAGES if (PAGES / "index.html").is_file() else None
    app = create_app(store, tokens, cors_origins=origins, pages=pages)
    host = args.host or settings.console_host
    port = settings.console_port if args.port is None else args.port
    config = uvicorn.Config(
        app, host=host, port=port, access_log=False, log_level="warning", lifespan="off",
        timeout_graceful_shutdown=GRACE_S,
    )  # fmt: skip
    server = uvicorn.Server(config)
    sys.stderr.write(
        f"voxkeepctl: serving the console at http://{host}:{port}/"
        + ("" if pages else " (the API only: build the pages with npm run build)")
        + "\n"
    )
    await server.serve()
    return 0
