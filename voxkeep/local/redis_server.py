"""A Redis server on this machine, for LiveKit's distributed mode in `scripts/run --nodes N` and
in the end-to-end tests (docs/scaling.md): Debian's `redis-server`, on loopback, with a password
of its own (a server on loopback still checks who is asking), keeping nothing on disk."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from voxkeep.core.errors import VoxkeepError
from voxkeep.local import supervised

STARTUP_TIMEOUT_S = 10.0


@dataclass
class LocalRedis:
    """One `redis-server` on 127.0.0.1:`port`. `start` returns once it answers an authenticated
    PING; `stop` ends it and removes its folder."""

    port: int = 6379
    password: str = field(default_factory=lambda: secrets.token_hex(24))
    log: IO[Any] | None = None
    """Where the server's output goes (default: discarded)."""
    _proc: subprocess.Popen[bytes] | None = None
    _folder: Path | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def livekit_config(self) -> dict[str, str]:
        """The `redis:` section of a LiveKit node's config that points at this server."""
        return {"address": self.address, "password": self.password}

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise VoxkeepError("redis-server is not installed: run scripts/bootstrap")
        self._folder = Path(tempfile.mkdtemp(prefix="voxkeep-redis-"))
        config = self._folder / "redis.conf"
        # the password is in a file only its owner reads, not on the command line for `ps`
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(
                f"port {self.port}\nbind 127.0.0.1\nprotected-mode yes\n"
                f'requirepass {self.password}\nsave ""\nappendonly no\n'
                f"dir {self._folder}\n"
            )
        if _answers(self.port, self.password):
            self.stop()
            raise VoxkeepError(f"port {self.port} is taken: is another Redis server running?")
        self._proc = supervised.start_answering(
            [binary, str(config)], lambda: _answers(self.port, self.password),
            what=f"redis-server on port {self.port}", log=self.log,
            timeout_s=STARTUP_TIMEOUT_S, cleanup=self.stop,
        )  # fmt: skip

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        supervised.stop(proc)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def _answers(port: int, password: str) -> bool:
    """Whether a Redis server on this port answers PING once authenticated with `password`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(_command("AUTH", password) + _command("PING"))
            reply = b""
            while reply.count(b"\r\n") < 2:
                chunk = conn.recv(256)
                if not chunk:
                    break
                reply += chunk
    except OSError:
        return False
    return reply.endswith(b"+PONG\r\n")


def _command(*words: str) -> bytes:
    """One command in Redis's protocol (RESP): an array of bulk strings."""
    parts = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)
