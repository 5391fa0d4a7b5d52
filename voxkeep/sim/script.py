"""The simulation script format (docs/simulate.md), a public interface: YAML or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voxkeep.core.errors import InvalidInput


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _Spoken(_Step):
    pitch: int | None = Field(None, ge=0, le=99)
    rate: int | None = Field(None, ge=80, le=500)
    volume: int | None = Field(None, ge=0, le=200)
    audio: str | None = None  # a WAV file instead of espeak-ng; the text is what it says


class Say(_Spoken):
    say: str = Field(min_length=1, max_length=2000)


class BargeIn(_Spoken):
    barge_in: str = Field(min_length=1, max_length=2000)


class Command(_Step):
    command: dict[str, Any] | str
    via: Literal["data", "rpc"] = "data"
    sender: str | None = Field(None, alias="from")


class Wait(_Step):
    wait: float = Field(ge=0, le=600)


Step = Say | BargeIn | Command | Wait


class CallScript(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metadata: dict[str, Any] | None = None
    steps: list[Step] = Field(default_factory=list)
    end: Literal["hangup", "drop"] = "hangup"


class Script(BaseModel):
    model_config = ConfigDict(extra="forbid")
    caller: str = Field("caller", min_length=1, max_length=256)
    room: str | None = None
    replies: list[str] = Field(default_factory=list)
    calls: list[CallScript] = Field(min_length=1)


def load_script(path: str | Path) -> tuple[Script, Path]:
    """The script at `path` and the folder its relative audio paths start from."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise InvalidInput(
            f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}"
        ) from exc
    try:
        return Script.model_validate(data), path.parent
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{path}: {where}: {first['msg']}") from exc
