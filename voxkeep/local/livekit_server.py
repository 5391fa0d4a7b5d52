"""A LiveKit server on this machine, for `scripts/run` with no `LIVEKIT_URL` and for the
end-to-end tests: the release pinned in `config/livekit-server.version` (which
`scripts/bootstrap` builds into `.tools/bin`), started from `config/livekit.yaml`, which keeps
it on loopback (docs/livekit.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from voxkeep.core.errors import VoxkeepError
from voxkeep.local import supervised

STARTUP_TIMEOUT_S = 20.0
TOOLS_BIN = Path(".tools/bin/livekit-server")


def pinned_version(config_dir: Path) -> str:
    """The release `scripts/bootstrap` installs, e.g. "1.13.5"."""
    lines = (config_dir / "livekit-server.version").read_text().splitlines()
    pins = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return pins[0].removeprefix("v")


def find_binary(root: Path, version: str) -> Path:
    """`.tools/bin/livekit-server` under `root`, else one on PATH at `version`."""
    candidates = [root / TOOLS_BIN]
    if on_path := shutil.which("livekit-server"):
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and _version_of(candidate) == version:
            return candidate
    raise VoxkeepError(
        f"livekit-server {version} is not installed: run scripts/bootstrap, or put it on PATH"
    )


def _version_of(binary: Path) -> str:
    try:
        done = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip().rpartition(" ")[2]


@dataclass
class LocalServer:
    """One `livekit-server` process from `config`, with the HTTP and UDP ports given (0: the
    config's own). `start` returns once its health check answers; `stop` ends it."""

    binary: Path
    config: Path
    port: int = 0
    udp_port: int = 0
    log: IO[Any] | None = None
    """Where the server's output goes (default: discarded)."""
    keys: dict[str, str] = field(default_factory=dict)
    redis: dict[str, str] | None = None
    """The config's `redis:` section instead of its own (LiveKit's distributed mode)."""
    _proc: subprocess.Popen[bytes] | None = None
    _config_file: Path | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def api_key(self) -> str:
        return next(iter(self.keys))

    @property
    def api_secret(self) -> str:
        return self.keys[self.api_key]

    def start(self) -> None:
        settings = yaml.safe_load(self.config.read_text())
        self.port = self.port or int(settings["port"])
        settings["port"] = self.port
        rtc = settings.setdefault("rtc", {})
        self.udp_port = self.udp_port or int(rtc["udp_port"])
        rtc["udp_port"] = self.udp_port
        self.keys = {str(k): str(v) for k, v in settings["keys"].items()}
        if self.redis is not None:
            settings["redis"] = self.redis
        fd, name = tempfile.mkstemp(prefix="livekit-", suffix=".yaml")
        with os.fdopen(fd, "w") as out:
            yaml.safe_dump(settings, out)
        self._config_file = Path(name)
        if _answers(self.port):
            self.stop()
            raise VoxkeepError(f"port {self.port} is taken: is another LiveKit server running?")
        self._proc = supervised.start_answering(
            [self.binary, "--config", self._config_file], lambda: _answers(self.port),
            what=f"livekit-server on port {self.port}", log=self.log,
            timeout_s=STARTUP_TIMEOUT_S, cleanup=self.stop,
        )  # fmt: skip

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        supervised.stop(proc)
        if self._config_file is not None:
            self._config_file.unlink(missing_ok=True)
            self._config_file = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None


def _answers(port: int) -> bool:
    """Whether a LiveKit server's health check answers OK on this port."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False
