"""The Redis a local cluster shares (docs/scaling.md): on loopback, answering only those who
know its password, which is never on its command line."""

from __future__ import annotations

import psutil

from tests.support.processes import free_port
from voxkeep.local.redis_server import LocalRedis, _answers


def test_it_answers_only_with_its_password_which_no_command_line_shows() -> None:
    redis = LocalRedis(port=free_port())
    redis.start()
    try:
        assert _answers(redis.port, redis.password)
        assert not _answers(redis.port, "not-the-password")
        assert redis.livekit_config() == {
            "address": f"127.0.0.1:{redis.port}", "password": redis.password,
        }  # fmt: skip
        assert redis._proc is not None
        server = psutil.Process(redis._proc.pid)
        assert redis.password not in " ".join(server.cmdline())
        assert {c.laddr.ip for c in server.net_connections("tcp")} == {"127.0.0.1"}
    finally:
        redis.stop()
    assert not _answers(redis.port, redis.password)
