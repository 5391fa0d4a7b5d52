"""The package as a user installs it (docs/operations.md#install): the wheel, built from this
checkout, in a fresh virtual environment with no repository on the path. With no extra it runs
the worker's start check on SQLite and names each missing extra in one line; `[console]` serves
the console's pages from package data; `[sim]` runs an offline simulation; `[postgres]` migrates
a real PostgreSQL database."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import new_database
from tests.pg import PgServer
from tests.support.once import once
from tests.support.processes import clean_env, free_port

ROOT = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).with_name("uv")
INSTALL_TIMEOUT_S = 600
RUN_TIMEOUT_S = 180

pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class Install:
    """A virtual environment with the wheel installed, and a working folder outside the
    checkout for its commands."""

    venv: Path
    cwd: Path

    def run(self, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
        """A command of the install (`voxkeepctl …`, `python …`), from outside the checkout."""
        command, *rest = argv
        return subprocess.run(
            [str(self.venv / "bin" / command), *rest], cwd=self.cwd, env=self.env(**env),
            capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
        )  # fmt: skip

    def env(self, **extra: str) -> dict[str, str]:
        defaults = {
            "VOXKEEP_DB_URL": f"sqlite:///{self.cwd}/voxkeep.db",
            "VOXKEEP_JOURNAL_DIR": str(self.cwd / "journal"),
        }
        base = clean_env(**{**defaults, **extra})
        base.pop("PYTHONPATH", None)
        return base

    def distributions(self) -> set[str]:
        out = self.run("python", "-c", LIST_DISTRIBUTIONS).stdout
        return set(out.split())


LIST_DISTRIBUTIONS = (
    "import importlib.metadata as m; "
    "print(' '.join(d.metadata['Name'].lower() for d in m.distributions()))"
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout, built as a release would be (sdist, then the wheel from
    it), and installed into two fresh environments: `lean` without extras, `extras` with
    `[console,sim,postgres]`; once per test run, whichever workers run these tests."""
    if not (ROOT / "voxkeep" / "console" / "pages" / "index.html").is_file():
        pytest.fail("the console's pages are not built: npm run build (scripts/bootstrap runs it)")
    with once("install", tmp_path_factory) as (root, fill):
        if fill:
            source = checkout_copy(root / "source")  # (a build writes beside the sources)
            subprocess.run(
                [str(UV), "build", "--quiet", "--out-dir", str(root / "dist"), str(source)],
                check=True, timeout=INSTALL_TIMEOUT_S,
            )  # fmt: skip
            (wheel,) = (root / "dist").glob("voxkeep-*.whl")
            install(root / "lean", str(wheel))
            install(root / "extras", f"voxkeep[console,sim,postgres] @ {wheel.as_uri()}")
    return root


@pytest.fixture(scope="module")
def wheel(built: Path) -> Path:
    (found,) = (built / "dist").glob("voxkeep-*.whl")
    return found


def checkout_copy(dest: Path) -> Path:
    """The checkout's tracked files and the console's built pages, copied to `dest`."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for name in tracked:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    pages = Path("voxkeep") / "console" / "pages"
    shutil.copytree(ROOT / pages, dest / pages)
    return dest


def install(venv: Path, requirement: str) -> None:
    subprocess.run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    subprocess.run(
        [str(UV), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
         "-c", str(ROOT / "requirements.lock"), requirement],
        check=True, timeout=INSTALL_TIMEOUT_S, env=clean_env(),
    )  # fmt: skip


def in_folder_of_its_own(built: Path, name: str, tmp: Path) -> Install:
    cwd = tmp / "work"
    cwd.mkdir()
    return Install(built / name, cwd)


@pytest.fixture(scope="module")
def lean(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Install:
    return in_folder_of_its_own(built, "lean", tmp_path_factory.mktemp("lean"))


@pytest.fixture(scope="module")
def extras(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Install:
    return in_folder_of_its_own(built, "extras", tmp_path_factory.mktemp("extras"))


WORKER_SETTINGS = {
    "LIVEKIT_URL": "ws://127.0.0.1:7880",
    "LIVEKIT_API_KEY": "devkey",
    "LIVEKIT_API_SECRET": "secret",
    "OPENAI_API_KEY": "sk-local",
}


def test_the_wheel_ships_the_console_pages_and_not_the_checkouts_runner(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "voxkeep/console/pages/index.html" in names
    assert "voxkeep/py.typed" in names
    assert any(n.startswith("voxkeep/store/migrations/sqlite/") for n in names)
    assert not [n for n in names if n.startswith(("voxkeep/local/", "tests/"))]


def test_without_extras_the_worker_passes_its_start_check(lean: Install) -> None:
    migrated = lean.run("voxkeepctl", "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr
    checked = lean.run("python", "-m", "voxkeep", "check", **WORKER_SETTINGS)
    assert checked.returncode == 0, checked.stderr
    assert "ready" in checked.stdout
    installed = lean.distributions()
    assert "voxkeep" in installed
    assert not installed & {"fastapi", "uvicorn", "starlette", "asyncpg", "pytest", "mypy"}


def test_a_missing_extra_is_named_in_one_line_with_its_pip_command(lean: Install) -> None:
    lean.run("voxkeepctl", "db", "migrate")
    served = lean.run("voxkeepctl", "serve", VOXKEEP_CONSOLE_TOKENS="read:t")
    assert served.returncode == 1
    assert served.stderr == (
        "voxkeepctl: voxkeepctl serve needs voxkeep[console]: pip install 'voxkeep[console]'\n"
    )
    pg = "postgresql://voxkeep@127.0.0.1:1/none"
    listed = lean.run("voxkeepctl", "--db", pg, "chats", "list")
    assert listed.returncode == 1
    needs_pg = "the PostgreSQL store needs voxkeep[postgres]: pip install 'voxkeep[postgres]'"
    assert listed.stderr == f"voxkeepctl: {needs_pg}\n"
    worker = lean.run("python", "-m", "voxkeep", "check", VOXKEEP_DB_URL=pg, **WORKER_SETTINGS)
    assert worker.returncode == 1
    assert worker.stderr == f"voxkeep: {needs_pg}\n"


def test_the_console_extra_serves_its_pages_from_the_package(extras: Install) -> None:
    assert extras.run("voxkeepctl", "db", "migrate").returncode == 0
    port = free_port()
    env = extras.env(VOXKEEP_CONSOLE_TOKENS="read:a-page-reading-token")
    with subprocess.Popen(
        [str(extras.venv / "bin" / "voxkeepctl"), "serve", "--port", str(port)],
        cwd=extras.cwd, env=env, stderr=subprocess.PIPE, text=True,
    ) as server:  # fmt: skip
        try:
            page = get_when_up(f"http://127.0.0.1:{port}/", server)
            asset = page.split('src="', 1)[1].split('"', 1)[0]
            script = get_when_up(f"http://127.0.0.1:{port}{asset}", server)  # what the page loads
        finally:
            server.terminate()
        assert server.stderr is not None
        said = server.stderr.read()
    assert "<title>" in page
    assert asset.startswith("/assets/") and script
    assert "the API only" not in said


def test_the_sim_extra_runs_an_offline_simulation(extras: Install) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (scripts/bootstrap installs it)")
    script = extras.cwd / "call.yaml"
    script.write_text(
        "caller: alice\nreplies: ['Lisbon is lovely in May.']\n"
        "calls:\n  - steps:\n      - say: I would like to plan a trip to Lisbon.\n"
    )
    db = f"sqlite:///{extras.cwd}/sim.db"
    ran = extras.run(
        "voxkeepctl", "--db", db, "--json", "simulate", str(script), "--offline",
        VOXKEEP_LOG_LEVEL="WARNING",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    ((chat_id,),) = (call["chat_ids"] for call in json.loads(ran.stdout)["calls"])
    shown = extras.run("voxkeepctl", "--db", db, "--json", "chats", "show", chat_id)
    assert shown.returncode == 0, shown.stderr
    said = [(m["role"], m["content"]) for m in json.loads(shown.stdout)["messages"]]
    assert said == [
        ("user", "I would like to plan a trip to Lisbon."),
        ("assistant", "Lisbon is lovely in May."),
    ]


def test_the_postgres_extra_migrates_a_real_database(extras: Install, pg_server: PgServer) -> None:
    import asyncio

    url = asyncio.run(new_database(pg_server))
    migrated = extras.run("voxkeepctl", "--db", url, "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr
    checked = extras.run("voxkeepctl", "--db", url, "--json", "db", "check")
    assert checked.returncode == 0, checked.stderr


def get_when_up(url: str, server: subprocess.Popen[str], timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return str(answer.read().decode())
        except (urllib.error.URLError, ConnectionError):
            assert server.poll() is None, f"the console stopped: {server.communicate()[1]}"
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_scripts_run_with_a_livekit_url_needs_no_go_npm_browser_or_postgres(
    tmp_path: Path,
) -> None:
    """`scripts/run` against a LiveKit server the user already runs builds and installs
    nothing beyond the Python package: every tool it must not need answers with a failure and
    leaves a mark, and the worker's start check passes."""
    shims, marks = tmp_path / "bin", tmp_path / "called"
    shims.mkdir()
    for tool in ("go", "npm", "npx", "node", "chromium", "apt-get", "pg_ctl", "initdb"):
        shim = shims / tool
        shim.write_text(f"#!/bin/sh\necho {tool} >> {marks}\nexit 1\n")
        shim.chmod(0o755)
    env = clean_env(
        **WORKER_SETTINGS,
        PATH=f"{shims}:{os.environ['PATH']}",
        VOXKEEP_DB_URL=f"sqlite:///{tmp_path}/voxkeep.db",
        VOXKEEP_JOURNAL_DIR=str(tmp_path / "journal"),
    )
    ran = subprocess.run(
        [str(ROOT / "scripts" / "run"), "check"], env=env, capture_output=True, text=True,
        timeout=INSTALL_TIMEOUT_S,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "ready" in ran.stdout
    assert not marks.exists(), marks.read_text()
