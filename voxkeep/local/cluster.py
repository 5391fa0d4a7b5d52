"""LiveKit's distributed mode on this machine (docs/scaling.md): one Redis and a `livekit-server`
node per config, all on loopback, for `scripts/run --nodes N` and the fleet's end-to-end tests.
Signalling for a room may reach any node; Redis routes it to the node that hosts the room."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from voxkeep.local.livekit_server import LocalServer
from voxkeep.local.redis_server import LocalRedis

NODE_CONFIGS = ("livekit-node-a.yaml", "livekit-node-b.yaml")
"""The nodes `config/` describes, in the order `--nodes N` takes them."""


@dataclass
class LocalCluster:
    """`nodes` (not started yet) sharing `redis`: `start` starts Redis, then each node; `stop`
    stops them in the reverse order."""

    redis: LocalRedis
    nodes: list[LocalServer] = field(default_factory=list)

    @classmethod
    def from_configs(
        cls, binary: Path, configs: list[Path], *, log: IO[Any] | None = None
    ) -> LocalCluster:
        """A node per config, on the config's own ports, and Redis on the first config's
        `redis.address` port."""
        address = yaml.safe_load(configs[0].read_text())["redis"]["address"]
        redis = LocalRedis(port=int(address.rpartition(":")[2]), log=log)
        return cls(redis, [LocalServer(binary, config, log=log) for config in configs])

    def start(self) -> None:
        self.redis.start()
        try:
            for node in self.nodes:
                node.redis = self.redis.livekit_config()
                node.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        self.redis.stop()
