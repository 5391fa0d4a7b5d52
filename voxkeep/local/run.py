"""`scripts/run [COMMAND]`: the worker (LiveKit's `start` by default, or `dev`, `console`, …).

With `LIVEKIT_URL` set, this is `python -m voxkeep COMMAND`. Without it, the worker gets a
LiveKit server of its own on loopback (`config/livekit.yaml`, LiveKit's development key
`devkey` / `secret` on ws://127.0.0.1:7880), and the reference web app is served beside it
(`voxkeep/local/webapp.py`, http://127.0.0.1:8089/ by default): the server starts first, the worker
joins it, and Ctrl-C or SIGTERM stops the worker (which lets its calls close), the web app and
then the server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

from voxkeep.core.errors import VoxkeepError
from voxkeep.core.settings import load_settings
from voxkeep.local.livekit_server import LocalServer, find_binary, pinned_version

LOCAL_DRAIN_TIMEOUT_S = "10"
"""At Ctrl-C, how long a local worker lets its calls finish (unless VOXKEEP_DRAIN_TIMEOUT_S)."""
SERVERLESS = {"console", "download-files", "--help", "-h"}


def _join_hint(server: LocalServer) -> str:
    creds = (
        f"LIVEKIT_URL={server.url} LIVEKIT_API_KEY={server.api_key} "
        f"LIVEKIT_API_SECRET={server.api_secret}"
    )
    return (
        f"LiveKit server on {server.url} (key {server.api_key}); the worker is starting.\n"
        f"Talk to it in the web app (its address follows), or join a room with a token:\n"
        f"  {creds} .venv/bin/voxkeepctl token --room demo --identity me\n"
        f"Ctrl-C stops the worker, then the server.\n"
    )


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "start"
    worker = [sys.executable, "-m", "voxkeep", command, *argv[1:]]
    try:
        settings = load_settings()
        if settings.livekit_url or command in SERVERLESS:
            os.execv(sys.executable, worker)
        missing = settings.missing_for_worker(livekit=False)
        if missing:
            raise VoxkeepError(
                f"set {', '.join(missing)} in .env or the environment (see config/example.env)"
            )
        root = Path.cwd()
        server = LocalServer(
            find_binary(root, pinned_version(root / "config")), root / "config" / "livekit.yaml"
        )
        server.start()
    except VoxkeepError as exc:
        sys.stderr.write(f"run: {exc}\n")
        return 1
    env = {
        **os.environ,
        "LIVEKIT_URL": server.url,
        "LIVEKIT_API_KEY": server.api_key,
        "LIVEKIT_API_SECRET": server.api_secret,
    }
    env.setdefault("VOXKEEP_DRAIN_TIMEOUT_S", LOCAL_DRAIN_TIMEOUT_S)
    try:
        sys.stdout.write(_join_hint(server))
        sys.stdout.flush()
        proc = subprocess.Popen(worker, env=env, start_new_session=True)
        web = subprocess.Popen(  # it prints its address, or in one line why it cannot serve
            [sys.executable, "-m", "voxkeep.local.webapp", "--port", str(settings.web_port)],
            env=env,
            start_new_session=True,
        )

        def forward(signum: int, frame: FrameType | None) -> None:
            proc.send_signal(signal.SIGTERM)  # a second one makes LiveKit stop at once

        signal.signal(signal.SIGINT, forward)
        signal.signal(signal.SIGTERM, forward)
        code = proc.wait()
        web.terminate()
        web.wait()
    finally:
        server.stop()
    return 0 if code in (0, -signal.SIGTERM) else code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
