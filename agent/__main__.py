"""`python -m agent COMMAND`: LiveKit's worker CLI (`start`, `dev`, `console`, `download-files`)
with our entrypoint, after checking settings, the models they name and the database schema."""

from __future__ import annotations

import asyncio
import sys

from agent import providers
from agent.errors import AgentError, SchemaError
from agent.factory import load_factory
from agent.logs import configure_logging
from agent.settings import Settings, load_settings
from agent.store import open_store

NEEDS_SERVER = {"start", "dev", "connect"}
NEEDS_STORE = NEEDS_SERVER | {"console"}


async def check_schema(settings: Settings) -> None:
    """The worker runs only against a database at exactly the schema it knows."""
    store = await open_store(settings.db_url)
    try:
        status = await store.schema_status()
    finally:
        await store.aclose()
    if status.current != status.latest:
        raise SchemaError(
            f"the database is at schema version {status.current}, this worker needs "
            f"{status.latest}: run `agentctl db migrate`"
        )


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if {"--help", "-h"} & set(sys.argv[2:]):
        command = "--help"  # LiveKit's CLI explains the command; nothing to check
    try:
        settings = load_settings()
        missing = settings.missing_for_worker() if command in NEEDS_SERVER else []
        if missing:
            raise AgentError(
                f"set {', '.join(missing)} in .env or the environment (see config/example.env)"
            )
        if settings.factory and command in NEEDS_STORE:
            load_factory(settings.factory)  # fails here, in one line, not at the first call
        # imports the plugins named, so that `download-files` fetches their models
        providers.check(settings, model_files=command != "download-files")
        if command in NEEDS_STORE:
            asyncio.run(check_schema(settings))
    except AgentError as exc:
        sys.stderr.write(f"agent: {exc}\n")
        return 1
    configure_logging(settings.log_level, settings.log_format)

    from livekit.agents import cli

    from agent.server import build_server

    cli.run_app(build_server(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
