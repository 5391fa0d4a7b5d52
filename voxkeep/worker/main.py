"""`python -m voxkeep COMMAND`: LiveKit's worker CLI (`start`, `dev`, `console`, `download-files`)
with our entrypoint, after checking settings, the models they name and the database schema;
`check` makes the same checks as `start` and stops there (an image's or a deploy's smoke test).

Only the settings are imported before `main` runs: with metrics on, prometheus_client must see
its multiprocess folder before anything imports it (docs/metrics.md).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import sys
import tempfile

from voxkeep.core.errors import SchemaError, VoxkeepError
from voxkeep.core.settings import Settings, load_settings

CHECK = "check"
NEEDS_SERVER = {"start", "dev", "connect", CHECK}
NEEDS_STORE = NEEDS_SERVER | {"console"}
METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"


async def check_schema(settings: Settings) -> None:
    """The worker runs on a schema at or past its own that still serves its version
    (docs/store.md, upgrades)."""
    from voxkeep.store import open_store

    store = await open_store(settings.db_url)
    try:
        refusal = (await store.schema_status()).refusal("worker")
    finally:
        await store.aclose()
    if refusal:
        raise SchemaError(refusal)


def collect_from_every_process(settings: Settings) -> None:
    """With metrics on, every process of the worker (LiveKit runs each job in its own) writes
    its values to one folder the metrics server reads: a new one for this worker unless
    PROMETHEUS_MULTIPROC_DIR names one."""
    if settings.metrics_port is not None and not os.environ.get(METRICS_DIR):
        folder = tempfile.mkdtemp(prefix="voxkeep-metrics-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        os.environ[METRICS_DIR] = folder


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if {"--help", "-h"} & set(sys.argv[2:]):
        command = "--help"  # LiveKit's CLI explains the command; nothing to check
    try:
        settings = load_settings()
        collect_from_every_process(settings)
        from voxkeep.worker import providers
        from voxkeep.worker.factory import load_factory

        missing = settings.missing_for_worker() if command in NEEDS_SERVER else []
        if missing:
            raise VoxkeepError(
                f"set {', '.join(missing)} in .env or the environment (see config/example.env)"
            )
        if settings.factory and command in NEEDS_STORE:
            load_factory(settings.factory)  # fails here, in one line, not at the first call
        # imports the plugins named, so that `download-files` fetches their models
        providers.check(settings, model_files=command != "download-files")
        if command in NEEDS_STORE:
            asyncio.run(check_schema(settings))
    except VoxkeepError as exc:
        sys.stderr.write(f"voxkeep: {exc}\n")
        return 1
    if command == CHECK:
        sys.stdout.write("voxkeep: ready to start (settings, models and the store's schema)\n")
        return 0
    from livekit.agents import cli

    from voxkeep.core.logs import configure_logging
    from voxkeep.worker.server import build_server

    configure_logging(settings.log_level, settings.log_format)
    cli.run_app(build_server(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
