"""The container image's recipe and the compose examples, read and checked without an engine
(tests/live/test_image.py builds the image and runs it): the image's command line runs as
written with the image's settings, its health check points at the worker's port, only the
wheels go into the build, and every setting the examples pass is one the agent knows and
accepts."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from livekit.agents.worker import ServerOptions

from voxkeep.core.settings import Settings, _variable

ROOT = Path(__file__).parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = ["compose.dev.yaml", "compose.postgres.yaml"]
IMAGE_SCRIPT = (ROOT / "scripts" / "image").read_text()
DEFAULT_TAG = re.search(r"^tag=(\S+)", IMAGE_SCRIPT, re.MULTILINE)[1]  # type: ignore[index]


def instruction(name: str) -> list[str]:
    """The arguments of each `name` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line[len(name) + 1 :].strip() for line in joined.splitlines() if line.startswith(name)]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in instruction("ENV"):
        for pair in shlex.split(args):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def known(name: str) -> bool:
    return name in {_variable(field) for field in Settings.model_fields}


def test_the_images_command_migrates_then_starts_the_worker_with_the_images_settings(
    tmp_path: Path,
) -> None:
    env = image_env()
    agent_vars = {k: v for k, v in env.items() if k.startswith("VOXKEEP_")}
    assert agent_vars and all(known(k) for k in agent_vars)
    assert agent_vars["VOXKEEP_DB_URL"].startswith("sqlite:////data/")  # on the volume
    assert instruction("VOLUME") == ['["/data"]']
    # the CMD as written, with /data moved into a scratch folder and no LiveKit credentials
    (cmd,) = instruction("CMD")
    argv = yaml.safe_load(cmd)
    assert argv[:2] == ["sh", "-c"] and "voxkeepctl db migrate" in argv[2]
    run_env = {
        **{
            k: v.replace("/data", str(tmp_path)) for k, v in env.items() if k.startswith("VOXKEEP_")
        },
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
    }
    done = subprocess.run(argv, env=run_env, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)  # fmt: skip
    assert (tmp_path / "voxkeep.db").exists()  # migrated first
    assert done.returncode == 1  # then the worker refused to start without credentials, in one line
    assert done.stderr.strip().splitlines()[-1] == (
        "voxkeep: set LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET, OPENAI_API_KEY "
        "(or OPENAI_BASE_URL) in .env or the environment (see config/example.env)"
    )


def test_the_health_check_asks_the_port_the_worker_serves_under_start() -> None:
    default = ServerOptions.__dataclass_fields__["port"].default
    port = default.prod_default  # type: ignore[union-attr]
    assert instruction("EXPOSE") == [str(port)]
    (check,) = instruction("HEALTHCHECK")
    assert f"http://127.0.0.1:{port}/" in check
    assert "python -m voxkeep start" in instruction("CMD")[0]


def test_model_files_are_fetched_at_build_time_as_the_worker_user() -> None:
    assert "RUN python -m voxkeep download-files" in DOCKERFILE
    lines = DOCKERFILE.splitlines()
    user = next(i for i, line in enumerate(lines) if line.startswith("USER "))
    download = next(i for i, line in enumerate(lines) if "download-files" in line)
    # non-root, and its cache is the user's
    assert lines[user] == "USER voxkeep" and user < download
    assert instruction("FROM") == ["${BASE}"]  # any Debian bookworm image
    assert instruction("ARG BASE") == ["docker.io/library/debian:bookworm-slim"]
    done = subprocess.run([sys.executable, "-m", "voxkeep", "download-files"], capture_output=True,
                          timeout=120, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0


def test_only_the_recipe_the_pins_and_the_wheels_go_into_the_build() -> None:
    """No secret (.env) or local state (.venv, data, .git) can reach the image: every engine's
    ignore file sends nothing but what the Dockerfile reads."""
    for name in (".dockerignore", ".containerignore"):
        lines = (ROOT / name).read_text().splitlines()
        patterns = [line for line in lines if line and not line.startswith("#")]
        assert patterns == ["*", "!Dockerfile", "!requirements.lock", "!dist/"], name


def compose(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "config" / name).read_text())
    return loaded


def substituted(value: str) -> str:
    """`${VAR:?…}` / `${VAR}` as compose fills them, with stand-in values."""
    return re.sub(r"\$\{([A-Z_]+)[^}]*\}", lambda m: f"test-{m[1].lower()}", value)


@pytest.mark.parametrize("name", COMPOSE)
def test_each_compose_example_runs_the_image_beside_livekit_with_settings_the_agent_accepts(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose(name)["services"]
    livekit, agent = services["livekit"], services["agent"]
    assert livekit["image"].startswith("livekit/livekit-server") and "--dev" in livekit["command"]
    assert agent["image"] == f"{DEFAULT_TAG}"  # what scripts/image builds
    env = {key: substituted(str(value)) for key, value in agent["environment"].items()}
    assert all(known(key) for key in env), env
    # `--dev` serves the key "devkey" with the secret "secret", at the service's name
    assert (env["LIVEKIT_URL"], env["LIVEKIT_API_KEY"], env["LIVEKIT_API_SECRET"]) == (
        "ws://livekit:7880", "devkey", "secret"
    )  # fmt: skip
    for key in list(os.environ):
        if key.startswith(("VOXKEEP_", "LIVEKIT_", "OPENAI_")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)
    assert settings.missing_for_worker() == []
    if name == "compose.postgres.yaml":
        assert settings.db_url.startswith("postgresql://agent:")
        assert agent["deploy"]["replicas"] > 1 and settings.agent_name  # explicit dispatch by name
        assert agent["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_images_extras_exist_and_are_pinned() -> None:
    (default,) = instruction("ARG EXTRAS")
    extras = default.removeprefix("=").split(",")
    assert extras == ["postgres", "console"]
    assert f"extras={default.removeprefix('=')}" in IMAGE_SCRIPT  # the script builds the same
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    listed = [line for extra in extras for line in optional[extra]]
    pinned = {
        re.split("==", line)[0].lower().replace("_", "-")
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line
    }
    names = {re.split("[<>=!;\\[]", line)[0].lower() for line in listed}
    assert names <= pinned
    assert "pytest" not in names and "dev" not in extras
