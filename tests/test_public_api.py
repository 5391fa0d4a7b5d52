"""The public surface (docs/embedding.md): every name `voxkeep` exports resolves, and a user's
project whose files carry the names LiveKit's starters and examples use (`agent.py` first of
all) imports it and runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import voxkeep

# What LiveKit's starter projects and examples call their files: a user's project beside ours
# may hold any of them, and none may stand in for a module of ours.
STARTER_FILES = ("agent.py", "main.py", "app.py", "server.py", "worker.py", "tools.py")

USER_AGENT = '''
"""A user's entrypoint, as LiveKit's starter lays it out."""
from livekit.agents import Agent, AgentServer, AgentSession, JobContext, cli

from voxkeep import ChatHistory

history = ChatHistory()
server = AgentServer()


class Assistant(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You are a helpful voice assistant.")


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    await history.start(ctx, AgentSession(), Assistant())


if __name__ == "__main__":
    cli.run_app(server)
'''

CHECK = """
import agent
import voxkeep
from voxkeep import *  # noqa: F403

assert isinstance(agent.history, voxkeep.ChatHistory)
assert not voxkeep.__file__.startswith({folder!r}), voxkeep.__file__
print(sorted(name for name in voxkeep.__all__ if getattr(voxkeep, name) is not None))
"""


def test_every_public_name_resolves() -> None:
    for name in voxkeep.__all__:
        assert getattr(voxkeep, name).__name__ == name


def test_a_users_agent_py_beside_their_code_imports_the_public_api_and_runs(
    tmp_path: Path,
) -> None:
    for name in STARTER_FILES:  # each would break whatever imported it by mistake
        (tmp_path / name).write_text(f"raise ImportError('the user\\'s own {name}')\n")
    (tmp_path / "agent.py").write_text(USER_AGENT)
    (tmp_path / "check.py").write_text(CHECK.format(folder=str(tmp_path)))

    checked = subprocess.run(
        [sys.executable, "check.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == str(sorted(voxkeep.__all__))

    helped = subprocess.run(  # the user's worker starts: LiveKit's CLI answers
        [sys.executable, "agent.py", "--help"], cwd=tmp_path, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert helped.returncode == 0, helped.stderr
    assert "start" in helped.stdout and "dev" in helped.stdout
