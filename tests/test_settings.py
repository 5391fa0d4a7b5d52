"""Settings (docs/operations.md) and what the worker says at start when something is missing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.settings import Settings, _variable, load_settings

EXAMPLE = Path(__file__).parent.parent / "config" / "example.env"


def test_example_env_documents_every_variable_with_its_default() -> None:
    documented = set(re.findall(r"^([A-Z_]+)=", EXAMPLE.read_text(), re.MULTILINE))
    assert documented == {_variable(name) for name in Settings.model_fields}
    from_example = Settings(_env_file=EXAMPLE)
    defaults = Settings(_env_file=None)
    assert from_example == defaults


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AGENT_CONTROL_RATE", "fast"),
        ("AGENT_CONTROL_BURST", "0"),
        ("AGENT_LOG_FORMAT", "xml"),
        ("AGENT_PROSODY", "maybe"),
        ("AGENT_CONTEXT_TOKEN_BUDGET", "-5"),
        ("AGENT_FACTORY", "myapp.voice.build"),
    ],
)
def test_a_bad_value_fails_with_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as bad:
        load_settings()
    assert str(bad.value).startswith(f"{variable}: ") and "\n" not in str(bad.value)


def test_standard_variables_keep_their_names_and_secrets_stay_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIVEKIT_URL", "wss://example.livekit.cloud")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    monkeypatch.setenv("AGENT_NAME", "concierge")
    settings = load_settings()
    assert settings.livekit_url == "wss://example.livekit.cloud" and settings.name == "concierge"
    assert settings.openai_api_key.get_secret_value() == "sk-very-secret"
    assert "sk-very-secret" not in repr(settings) and "sk-very-secret" not in str(settings)


def _worker(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "LIVEKIT_"))}
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        cwd=tmp_path,  # no .env there
        env={**clean, "PYTHONPATH": str(Path(__file__).parent.parent), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_worker_names_the_missing_livekit_settings_in_one_line(tmp_path: Path) -> None:
    done = _worker(tmp_path, "start", LIVEKIT_URL="ws://localhost:7880", OPENAI_API_KEY="sk-x")
    assert done.returncode == 1
    assert done.stderr == (
        "agent: set LIVEKIT_API_KEY, LIVEKIT_API_SECRET in .env or the environment "
        "(see config/example.env)\n"
    )


@pytest.mark.parametrize("command", ["start", "dev"])
def test_the_worker_says_in_one_line_that_it_needs_model_credentials(
    tmp_path: Path, command: str
) -> None:
    livekit = {"LIVEKIT_URL": "ws://localhost:7880", "LIVEKIT_API_KEY": "devkey"}
    done = _worker(tmp_path, command, LIVEKIT_API_SECRET="secret", **livekit)
    assert done.returncode == 1
    assert done.stderr == (
        "agent: set OPENAI_API_KEY (or OPENAI_BASE_URL) in .env or the environment "
        "(see config/example.env)\n"
    )


@pytest.mark.parametrize(
    ("factory", "said"),
    [
        ("myapp.nowhere:build", "cannot import myapp.nowhere (ModuleNotFoundError: "
         "No module named 'myapp')"),
        ("tests.factories:nothing", "tests.factories:nothing does not exist"),
        ("tests.factories:INSTRUCTIONS", "tests.factories:INSTRUCTIONS is not callable"),
    ],
)  # fmt: skip
def test_a_factory_that_cannot_be_had_fails_at_start_in_one_line(
    tmp_path: Path, factory: str, said: str
) -> None:
    livekit = {"LIVEKIT_URL": "ws://localhost:7880", "LIVEKIT_API_KEY": "devkey"}
    done = _worker(tmp_path, "start", LIVEKIT_API_SECRET="secret", AGENT_FACTORY=factory, **livekit)
    assert (done.returncode, done.stderr) == (1, f"agent: AGENT_FACTORY: {said}\n")


def test_the_worker_refuses_a_database_that_is_not_migrated(tmp_path: Path) -> None:
    done = _worker(
        tmp_path,
        "start",
        LIVEKIT_URL="ws://localhost:7880",
        LIVEKIT_API_KEY="devkey",
        LIVEKIT_API_SECRET="secret",
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
        AGENT_DB_URL=f"sqlite:///{tmp_path}/fresh.db",
    )
    assert done.returncode == 1
    assert done.stderr == (
        "agent: the database is at schema version 0, this worker needs 2: "
        "run `agentctl db migrate`\n"
    )


def test_the_worker_hands_off_to_livekits_cli(tmp_path: Path) -> None:
    done = _worker(tmp_path, "--help")
    assert done.returncode == 0
    for command in ("start", "dev", "console", "download-files"):
        assert command in done.stdout
