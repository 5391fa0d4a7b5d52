"""`scripts/run [COMMAND]`: the worker (LiveKit's `start` by default, or `dev`, `console`, …).

With `LIVEKIT_URL` set, this is `python -m voxkeep COMMAND`. Without it, the worker gets a
LiveKit server of its own on loopback (`config/livekit.yaml`, LiveKit's development key
`devkey` / `secret` on ws://127.0.0.1:7880), and the reference web app is served beside it
(`voxkeep/local/webapp.py`, http://127.0.0.1:8089/ by default): the server starts first, the worker
joins it, and Ctrl-C or SIGTERM stops the worker (which lets its calls close), the web app and
then the server.

`scripts/run --nodes N [COMMAND]` starts LiveKit's distributed mode instead (docs/scaling.md):
Redis on loopback, then N nodes from `config/livekit-node-*.yaml`, and a worker registered with
each node; the web app talks to the first node. Ctrl-C stops the workers, then the cluster.
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
from voxkeep.local.cluster import NODE_CONFIGS, LocalCluster
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


def _node_count(argv: list[str]) -> tuple[int, list[str]]:
    """`--nodes N` at the front of `argv` (0 without it), and the rest."""
    if argv[:1] != ["--nodes"]:
        return 0, argv
    if len(argv) < 2 or not argv[1].isdigit() or not 1 <= int(argv[1]) <= len(NODE_CONFIGS):
        raise VoxkeepError(f"--nodes takes a number from 1 to {len(NODE_CONFIGS)}")
    return int(argv[1]), argv[2:]


def _env_for(server: LocalServer) -> dict[str, str]:
    env = {
        **os.environ,
        "LIVEKIT_URL": server.url,
        "LIVEKIT_API_KEY": server.api_key,
        "LIVEKIT_API_SECRET": server.api_secret,
    }
    env.setdefault("VOXKEEP_DRAIN_TIMEOUT_S", LOCAL_DRAIN_TIMEOUT_S)
    return env


def main(argv: list[str]) -> int:
    try:
        nodes, argv = _node_count(argv)
        command = argv[0] if argv else "start"
        worker = [sys.executable, "-m", "voxkeep", command, *argv[1:]]
        settings = load_settings()
        if nodes and settings.livekit_url:
            raise VoxkeepError("--nodes starts a cluster of its own: unset LIVEKIT_URL")
        if settings.livekit_url or command in SERVERLESS:
            os.execv(sys.executable, worker)
        missing = settings.missing_for_worker(livekit=False)
        if missing:
            raise VoxkeepError(
                f"set {', '.join(missing)} in .env or the environment (see config/example.env)"
            )
        root = Path.cwd()
        binary = find_binary(root, pinned_version(root / "config"))
        if nodes:
            configs = [root / "config" / name for name in NODE_CONFIGS[:nodes]]
            cluster = LocalCluster.from_configs(binary, configs)
            servers, stop = cluster.nodes, cluster.stop
            cluster.start()
        else:
            server = LocalServer(binary, root / "config" / "livekit.yaml")
            servers, stop = [server], server.stop
            server.start()
    except VoxkeepError as exc:
        sys.stderr.write(f"run: {exc}\n")
        return 1
    try:
        sys.stdout.write(_join_hint(servers[0]))
        if nodes:
            urls = ", ".join(server.url for server in servers)
            sys.stdout.write(f"A worker registers with each of {nodes} nodes: {urls}.\n")
        sys.stdout.flush()
        procs = [
            subprocess.Popen(worker, env=_env_for(server), start_new_session=True)
            for server in servers
        ]
        web = subprocess.Popen(  # it prints its address, or in one line why it cannot serve
            [sys.executable, "-m", "voxkeep.local.webapp", "--port", str(settings.web_port)],
            env=_env_for(servers[0]),
            start_new_session=True,
        )

        def forward(signum: int, frame: FrameType | None) -> None:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)  # a second one makes LiveKit stop at once

        signal.signal(signal.SIGINT, forward)
        signal.signal(signal.SIGTERM, forward)
        codes = [proc.wait() for proc in procs]
        web.terminate()
        web.wait()
    finally:
        stop()
    failed = [code for code in codes if code not in (0, -signal.SIGTERM)]
    return failed[0] if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
