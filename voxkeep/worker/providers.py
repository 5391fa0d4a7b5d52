"""The models of the session the worker builds when no factory of the user's is named
(docs/providers.md): speech to text, the LLM and text to speech from the providers the settings
name, or a realtime model alone; the turn detector; and the text model that writes summaries.

A provider other than OpenAI is an optional extra whose plugin is imported only when a setting
names it. `check` runs at start, before any call: an extra, a key or a model that is missing,
or settings that cannot go together, are one line then; and the plugins it imported are
registered with LiveKit, so `python -m voxkeep download-files` fetches their files.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

from livekit.agents import inference, llm, stt, tts
from livekit.agents.types import NOT_GIVEN
from livekit.agents.voice.turn import TurnDetectionMode
from livekit.plugins import openai

from voxkeep.core.errors import ConfigError
from voxkeep.core.settings import Settings

OPENAI_STT_MODEL = "gpt-4o-mini-transcribe"
OPENAI_TTS_MODEL = "gpt-4o-mini-tts"
OPENAI_VOICE = "alloy"
ELEVENLABS_FORMAT = "pcm_24000"
"""Raw 24 kHz audio from ElevenLabs, like the others: nothing to decode on the call's path."""


@dataclass(frozen=True, slots=True)
class Providers:
    """The session's models: STT, LLM and TTS, or a realtime model alone; and the text model
    that writes summaries."""

    summaries: llm.LLM[Any]
    llm: llm.LLM[Any] | llm.RealtimeModel
    stt: stt.STT[Any] | None = None
    tts: tts.TTS[Any] | None = None


@dataclass(frozen=True, slots=True)
class _Extra:
    setting: str
    """How it was asked for, e.g. `VOXKEEP_STT=deepgram`."""
    module: str
    extra: str


_EXTRAS = {
    "deepgram": _Extra("VOXKEEP_STT=deepgram", "livekit.plugins.deepgram", "deepgram"),
    "cartesia": _Extra("VOXKEEP_TTS=cartesia", "livekit.plugins.cartesia", "cartesia"),
    "elevenlabs": _Extra("VOXKEEP_TTS=elevenlabs", "livekit.plugins.elevenlabs", "elevenlabs"),
    "multilingual": _Extra(
        "VOXKEEP_TURN_DETECTION=multilingual", "livekit.plugins.turn_detector", "turn-detector"
    ),
    "english": _Extra(
        "VOXKEEP_TURN_DETECTION=english", "livekit.plugins.turn_detector", "turn-detector"
    ),
}
_TEXT_DETECTORS: dict[str, Literal["multilingual", "en"]] = {
    "multilingual": "multilingual",
    "english": "en",
}


def _plugin(name: str) -> ModuleType:
    extra = _EXTRAS[name]
    try:
        with warnings.catch_warnings():  # the text turn detector warns that it is deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            return importlib.import_module(extra.module)
    except ImportError:
        package = extra.module.replace(".", "-").replace("_", "-")
        raise ConfigError(
            f"{extra.setting} needs {package}: pip install 'voxkeep[{extra.extra}]'"
        ) from None


def check(settings: Settings, *, model_files: bool = True) -> None:
    """Everything the settings name can be built, or ConfigError in one line (`model_files`:
    including the files of a model that is fetched ahead of time)."""
    if settings.factory:
        return  # the user's factory brings its own models
    for setting, value, default in [
        ("VOXKEEP_STT", settings.stt, "openai"),
        ("VOXKEEP_TTS", settings.tts, "openai"),
        ("VOXKEEP_TURN_DETECTION", settings.turn_detection, "vad"),
    ]:
        if settings.realtime_model and value != default:
            raise ConfigError(
                f"{setting}={value} cannot go with VOXKEEP_REALTIME_MODEL: a realtime model "
                "hears, speaks and detects turns itself"
            )
    for name in (settings.stt, settings.tts, settings.turn_detection):
        if name in _EXTRAS:
            _plugin(name)
    model = _TEXT_DETECTORS.get(settings.turn_detection)
    if model is not None and model_files:
        _check_text_detector(settings.turn_detection, model)


def _check_text_detector(name: str, model: Literal["multilingual", "en"]) -> None:
    """The text turn detector's files are in the Hugging Face cache (it never downloads
    during a call)."""
    from huggingface_hub import try_to_load_from_cache
    from livekit.plugins.turn_detector.models import HG_MODEL, MODEL_REVISIONS, ONNX_FILENAME

    revision = MODEL_REVISIONS[model]
    for filename in (f"onnx/{ONNX_FILENAME}", "languages.json"):
        if not isinstance(try_to_load_from_cache(HG_MODEL, filename, revision=revision), str):
            raise ConfigError(
                f"VOXKEEP_TURN_DETECTION={name}: {HG_MODEL} {filename} (revision {revision}) is "
                "not on this machine: run `python -m voxkeep download-files`"
            )


def build(settings: Settings) -> Providers:
    """The providers the settings name (`check` has passed)."""
    key = settings.openai_api_key.get_secret_value() or NOT_GIVEN
    base_url = settings.openai_base_url or NOT_GIVEN
    summaries = openai.LLM(
        model=settings.summary_model or settings.llm_model, api_key=key, base_url=base_url
    )
    if settings.realtime_model:
        realtime = openai.realtime.RealtimeModel(
            model=settings.realtime_model,
            voice=settings.tts_voice or OPENAI_VOICE,
            api_key=settings.openai_api_key.get_secret_value() or None,
            base_url=base_url,
        )
        return Providers(llm=realtime, summaries=summaries)
    return Providers(
        stt=_stt(settings),
        llm=openai.LLM(model=settings.llm_model, api_key=key, base_url=base_url),
        tts=_tts(settings),
        summaries=summaries,
    )


def _stt(settings: Settings) -> stt.STT[Any]:
    if settings.stt == "deepgram":
        deepgram = _plugin("deepgram")
        return deepgram.STT(  # type: ignore[no-any-return]
            api_key=settings.deepgram_api_key.get_secret_value(),
            **_given(model=settings.stt_model),
            **_url("base_url", settings.deepgram_base_url, "/listen"),
        )
    return openai.STT(
        model=settings.stt_model or OPENAI_STT_MODEL,
        api_key=settings.openai_api_key.get_secret_value() or NOT_GIVEN,
        base_url=settings.openai_base_url or NOT_GIVEN,
    )


def _tts(settings: Settings) -> tts.TTS[Any]:
    if settings.tts == "cartesia":
        cartesia = _plugin("cartesia")
        return cartesia.TTS(  # type: ignore[no-any-return]
            api_key=settings.cartesia_api_key.get_secret_value(),
            **_given(model=settings.tts_model, voice=settings.tts_voice),
            **_url("base_url", settings.cartesia_base_url),
        )
    if settings.tts == "elevenlabs":
        elevenlabs = _plugin("elevenlabs")
        return elevenlabs.TTS(  # type: ignore[no-any-return]
            api_key=settings.eleven_api_key.get_secret_value(),
            encoding=ELEVENLABS_FORMAT,
            **_given(model=settings.tts_model, voice_id=settings.tts_voice),
            **_url("base_url", settings.eleven_base_url),
        )
    return openai.TTS(
        model=settings.tts_model or OPENAI_TTS_MODEL,
        voice=settings.tts_voice or OPENAI_VOICE,
        response_format="pcm",  # raw 24 kHz audio: nothing to decode on the call's path
        api_key=settings.openai_api_key.get_secret_value() or NOT_GIVEN,
        base_url=settings.openai_base_url or NOT_GIVEN,
    )


def _given(**options: str) -> dict[str, str]:
    """The options that are set (empty: the plugin's own default)."""
    return {name: value for name, value in options.items() if value}


def _url(name: str, base_url: str, path: str = "") -> dict[str, str]:
    return {name: base_url.rstrip("/") + path} if base_url else {}


def turn_detection(settings: Settings) -> TurnDetectionMode:
    """How the session decides that the caller has finished (in a job: the text detectors
    run in the worker's inference process)."""
    if settings.realtime_model:
        return "realtime_llm"
    if settings.turn_detection == "model":
        # LiveKit's audio turn detector, in this process; its model ships with livekit-agents
        return inference.TurnDetector(version="v1-mini")
    if (model := _TEXT_DETECTORS.get(settings.turn_detection)) is not None:
        detector = _plugin(settings.turn_detection)
        return (  # type: ignore[no-any-return]
            detector.multilingual.MultilingualModel()
            if model == "multilingual"
            else detector.english.EnglishModel()
        )
    return "vad"
