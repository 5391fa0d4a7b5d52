"""`python examples/concierge.py start`, as a user runs the example, with one setting a shared
test machine needs: under `start`, LiveKit's production default marks a worker full while the
machine's CPU is over 70 %, as a busy test machine's is, and a full worker is sent no job. (Not
`dev`: LiveKit's development mode tries its cloud turn detector and interruption service.)

    python tests/support/example_worker.py start
"""

from __future__ import annotations

import math
import runpy
from pathlib import Path
from typing import Any

from livekit.agents import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "concierge.py"
_run_app = cli.run_app


def _run_taking_every_call(server: Any) -> None:
    server.update_options(load_threshold=math.inf)
    _run_app(server)


if __name__ == "__main__":
    cli.run_app = _run_taking_every_call  # the example calls cli.run_app(server) as its last line
    runpy.run_path(str(EXAMPLE), run_name="__main__")  # the file itself, as `python` runs it
