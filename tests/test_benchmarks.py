"""The benchmarks in scripts/bench/ start as the docs say (docs/benchmarks.md): run as scripts
from any folder, every import of theirs resolves (they drive the tests' own callers and
stand-ins)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "scripts" / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_"))

LOAD_EACH = """
import runpy, sys
from pathlib import Path
path = list(sys.path)
for script in sys.argv[1:]:
    # as `python script.py` starts: its folder first, and nothing an earlier script added
    sys.path[:] = [str(Path(script).parent), *path]
    for name in [m for m in sys.modules if m == "_common" or m.split(".")[0] == "tests"]:
        del sys.modules[name]
    runpy.run_path(script, run_name="loaded")  # its imports and definitions, not its main()
    print("loaded", script, flush=True)
"""


def test_each_benchmark_loads_as_a_script_from_another_folder(tmp_path: Path) -> None:
    assert len(SCRIPTS) >= 8
    done = subprocess.run(
        [sys.executable, "-c", LOAD_EACH, *map(str, SCRIPTS)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:-1] == [f"loaded {s}" for s in SCRIPTS]
