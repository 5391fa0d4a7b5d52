"""`python examples/concierge.py start` (or another example named first), as a user runs the
example, with the settings a shared test machine needs: under `start`, LiveKit's production
default marks a worker full while the machine's CPU is over 70 %, as a busy test machine's is,
and a full worker is sent no job; and the health check goes on a port of the test's. (Not
`dev`: LiveKit's development mode tries its cloud turn detector and interruption service.)

    python tests/support/example_worker.py [attach.py] start
"""

from __future__ import annotations

import math
import os
import runpy
import sys
from pathlib import Path
from typing import Any

from livekit.agents import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_run_app = cli.run_app


def _run_taking_every_call(server: Any) -> None:
    server.update_options(load_threshold=math.inf)
    # the health check on the port the test gave it (VOXKEEP_HTTP_PORT), on loopback: the
    # example keeps LiveKit's 8081 on every interface, which two examples at once would both
    # take; AgentServer has no public way to move it once made, so its fields are set here
    server._host = os.environ.get("VOXKEEP_HTTP_HOST", "127.0.0.1")
    server._port = int(os.environ["VOXKEEP_HTTP_PORT"])
    _run_app(server)


if __name__ == "__main__":
    example = sys.argv.pop(1) if sys.argv[1].endswith(".py") else "concierge.py"
    cli.run_app = _run_taking_every_call  # the example calls cli.run_app(server) as its last line
    runpy.run_path(str(EXAMPLES / example), run_name="__main__")  # as `python` runs the file
