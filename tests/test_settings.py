"""Settings (docs/operations.md) and what the worker says at start when something is missing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from voxkeep.core.errors import ConfigError
from voxkeep.core.settings import Settings, _variable, load_settings
from voxkeep.store import migrations
from voxkeep.worker import providers

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
        ("VOXKEEP_CONTROL_RATE", "fast"),
        ("VOXKEEP_CONTROL_BURST", "0"),
        ("VOXKEEP_LOG_FORMAT", "xml"),
        ("VOXKEEP_PROSODY", "maybe"),
        ("VOXKEEP_CONTEXT_TOKEN_BUDGET", "-5"),
        ("VOXKEEP_FACTORY", "myapp.voice.build"),
    ],
)
def test_a_bad_value_fails_with_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as bad:
        load_settings()
    assert str(bad.value).startswith(f"{variable}: ") and "\n" not in str(bad.value)


@pytest.mark.parametrize(
    "secret", ["a-long-random-string", "whsec_not base64!", "whsec_" + "c2hvcnQ="]
)
def test_a_webhook_secret_not_in_the_standard_format_fails_in_one_line_without_its_value(
    secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOXKEEP_WEBHOOK_SECRET", secret)
    with pytest.raises(ConfigError) as bad:
        load_settings()
    said = str(bad.value)
    assert said.startswith("VOXKEEP_WEBHOOK_SECRET: ") and "\n" not in said
    assert secret not in said and secret.removeprefix("whsec_") not in said


def test_standard_variables_keep_their_names_and_secrets_stay_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIVEKIT_URL", "wss://example.livekit.cloud")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    monkeypatch.setenv("VOXKEEP_AGENT_NAME", "concierge")
    settings = load_settings()
    assert settings.livekit_url == "wss://example.livekit.cloud"
    assert settings.agent_name == "concierge"
    assert settings.openai_api_key.get_secret_value() == "sk-very-secret"
    assert "sk-very-secret" not in repr(settings) and "sk-very-secret" not in str(settings)


def _worker(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VOXKEEP_", "LIVEKIT_"))}
    return subprocess.run(
        [sys.executable, "-m", "voxkeep", *args],
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
        "voxkeep: set LIVEKIT_API_KEY, LIVEKIT_API_SECRET in .env or the environment "
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
        "voxkeep: set OPENAI_API_KEY (or OPENAI_BASE_URL) in .env or the environment "
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
    done = _worker(
        tmp_path, "start", LIVEKIT_API_SECRET="secret", VOXKEEP_FACTORY=factory, **livekit
    )
    assert (done.returncode, done.stderr) == (1, f"voxkeep: VOXKEEP_FACTORY: {said}\n")


def test_the_worker_refuses_a_database_that_is_not_migrated(tmp_path: Path) -> None:
    done = _worker(
        tmp_path,
        "start",
        LIVEKIT_URL="ws://localhost:7880",
        LIVEKIT_API_KEY="devkey",
        LIVEKIT_API_SECRET="secret",
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
        VOXKEEP_DB_URL=f"sqlite:///{tmp_path}/fresh.db",
    )
    assert done.returncode == 1
    assert done.stderr == (
        "voxkeep: the database is at schema version 0, this worker needs "
        f"{len(migrations.load('sqlite'))}: run `voxkeepctl db migrate`\n"
    )


def test_the_worker_hands_off_to_livekits_cli(tmp_path: Path) -> None:
    done = _worker(tmp_path, "--help")
    assert done.returncode == 0
    for command in ("start", "dev", "console", "download-files"):
        assert command in done.stdout


LIVEKIT = {"LIVEKIT_URL": "ws://localhost:7880", "LIVEKIT_API_KEY": "devkey"}


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"VOXKEEP_STT": "deepgram"}, "set DEEPGRAM_API_KEY in .env or the environment "
         "(see config/example.env)"),
        ({"VOXKEEP_TTS": "elevenlabs"}, "set ELEVEN_API_KEY in .env or the environment "
         "(see config/example.env)"),
        ({"VOXKEEP_REALTIME_MODEL": "gpt-realtime", "VOXKEEP_TTS": "cartesia"},
         "VOXKEEP_TTS=cartesia cannot go with VOXKEEP_REALTIME_MODEL: a realtime model hears, "
         "speaks and detects turns itself"),
        ({"VOXKEEP_REALTIME_MODEL": "gpt-realtime", "VOXKEEP_TURN_DETECTION": "model"},
         "VOXKEEP_TURN_DETECTION=model cannot go with VOXKEEP_REALTIME_MODEL: a realtime model "
         "hears, speaks and detects turns itself"),
        ({"VOXKEEP_TURN_DETECTION": "multilingual"},
         "VOXKEEP_TURN_DETECTION=multilingual: livekit/turn-detector onnx/model_q8.onnx "
         "(revision v0.4.1-intl) is not on this machine: run `python -m voxkeep download-files`"),
        ({"VOXKEEP_TURN_DETECTION": "english"},
         "VOXKEEP_TURN_DETECTION=english: livekit/turn-detector onnx/model_q8.onnx "
         "(revision v1.2.2-en) is not on this machine: run `python -m voxkeep download-files`"),
        ({"VOXKEEP_TURN_DETECTION": "sometimes"}, "VOXKEEP_TURN_DETECTION: Input should be "
         "'vad', 'model', 'multilingual' or 'english'"),
    ],
)  # fmt: skip
def test_models_the_settings_cannot_have_fail_at_start_in_one_line(
    tmp_path: Path, env: dict[str, str], said: str
) -> None:
    hugging_face = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}  # an empty cache
    done = _worker(tmp_path, "start", LIVEKIT_API_SECRET="secret", OPENAI_API_KEY="sk-x",
                   **LIVEKIT, **hugging_face, **env)  # fmt: skip
    assert (done.returncode, done.stderr) == (1, f"voxkeep: {said}\n")


@pytest.mark.parametrize(
    ("variable", "value", "extra"),
    [
        ("stt", "deepgram", "deepgram"),
        ("tts", "cartesia", "cartesia"),
        ("tts", "elevenlabs", "elevenlabs"),
        ("turn_detection", "multilingual", "turn-detector"),
    ],
)
def test_a_provider_whose_extra_is_not_installed_is_named_with_the_command_that_installs_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, extra: str
) -> None:
    module = {"turn-detector": "turn_detector"}.get(extra, extra)
    monkeypatch.setitem(sys.modules, f"livekit.plugins.{module}", None)  # as if not installed
    settings = Settings.model_validate({variable: value})
    with pytest.raises(ConfigError) as missing:
        providers.check(settings)
    assert str(missing.value) == (
        f"VOXKEEP_{variable.upper()}={value} needs livekit-plugins-{extra}: "
        f"pip install 'voxkeep[{extra}]'"
    )


def test_download_files_fetches_the_model_of_the_turn_detector_named_and_no_other(
    tmp_path: Path,
) -> None:
    offline = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}  # nothing leaves here
    named = _worker(tmp_path, "download-files", VOXKEEP_TURN_DETECTION="multilingual", **offline)
    said = " ".join((named.stdout + named.stderr).split())
    assert "Downloading files for livekit.plugins.turn_detector" in said
    assert named.returncode == 1  # offline, the fetch fails: said by LiveKit's CLI
    unnamed = _worker(tmp_path, "download-files", **offline)
    said = " ".join((unnamed.stdout + unnamed.stderr).split())
    assert unnamed.returncode == 0 and "Downloading files for livekit.plugins.openai" in said
    assert "turn_detector" not in said
