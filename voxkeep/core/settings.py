"""Settings (docs/operations.md): one object, built once at the composition root and passed down.

Variables are prefixed `VOXKEEP_`; the standard ones keep their names (`LIVEKIT_URL`,
`OPENAI_API_KEY` …). They come from the environment and `.env`; `config/example.env` documents
every one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from voxkeep.core.errors import ConfigError
from voxkeep.core.signing import signing_key

DEFAULT_INSTRUCTIONS = (
    "You are a friendly, concise voice assistant. Answer in one or two short sentences, "
    "in plain spoken language without lists or markup."
)


def _plain(name: str) -> AliasChoices:
    """A standard variable that keeps its own name (no VOXKEEP_ prefix)."""
    return AliasChoices(name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VOXKEEP_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # Store (docs/store.md)
    db_url: str = "sqlite:///data/voxkeep.db"
    journal_dir: str = "data/journal"
    writer_queue_max: int = Field(10_000, ge=1)
    writer_batch_max: int = Field(512, ge=1, le=10_000)

    # Agent (docs/architecture.md, docs/embedding.md)
    factory: str = ""
    """`package.module:function` making the user's own (AgentSession, Agent) for each job; the
    model settings below are then theirs to use or not."""
    agent_name: str = ""
    """The name workers register under for explicit dispatch; empty: automatic dispatch."""
    instructions: str = Field(DEFAULT_INSTRUCTIONS, min_length=1)
    # Models (docs/providers.md); an empty model or voice is the provider's default
    stt: Literal["openai", "deepgram"] = "openai"
    tts: Literal["openai", "cartesia", "elevenlabs"] = "openai"
    llm_model: str = "gpt-4o-mini"
    stt_model: str = ""
    tts_model: str = ""
    tts_voice: str = ""
    turn_detection: Literal["vad", "model", "multilingual", "english"] = "vad"
    """`vad`: the caller's silence ends a turn; `model`: LiveKit's audio turn detector (its
    model ships with livekit-agents); `multilingual` / `english`: LiveKit's text turn detector
    (the `turn-detector` extra, its model fetched by `python -m voxkeep download-files`)."""
    realtime_model: str = ""
    """A speech-to-speech model (e.g. `gpt-realtime`) in place of STT, LLM and TTS."""
    summary_model: str = ""
    """The text model that writes summaries (empty: `llm_model`)."""
    preemptive_generation: bool | None = None
    """Start the reply before the turn is confirmed (unset: LiveKit's default, on)."""
    prosody: bool = True

    # Resume (docs/resume.md)
    resume_window_s: float = Field(600.0, ge=0)
    context_token_budget: int = Field(4000, ge=100)
    context_max_messages: int = Field(60, ge=1)
    context_load_timeout_s: float = Field(1.0, gt=0)
    context_compact: bool = True
    heartbeat_s: float = Field(15.0, gt=0)
    stale_after_s: float = Field(60.0, gt=0)
    sweep_interval_s: float = Field(60.0, gt=0)
    continue_after_s: float | None = Field(None, gt=0)
    """A call whose heartbeat stopped this long ago while its caller is still in the room is
    continued by another worker's agent (docs/resume.md); unset: not continued. Keep it above
    VOXKEEP_HEARTBEAT_S and below VOXKEEP_STALE_AFTER_S."""
    continue_check_s: float = Field(2.0, gt=0)
    """How often each worker looks for calls to continue."""
    rejoin_grace_s: float = Field(30.0, ge=0)
    """How long the agent keeps a call open for a caller whose connection dropped to rejoin the
    same room (docs/resume.md); 0: the call ends as the caller leaves."""

    # Control (docs/control.md)
    control_topic: str = Field("voxkeep.control", min_length=1)
    control_rate: float = Field(5.0, gt=0)
    control_burst: int = Field(10, ge=1)

    # The worker process (LiveKit's AgentServer); unset means LiveKit's own default
    http_host: str = ""
    """Where the health check listens; empty = every interface (a container's probe)."""
    http_port: int | None = Field(None, ge=0, le=65535)
    """The health check's port: LiveKit's default is 8081 under `start`, a free one under `dev`."""
    load_threshold: float | None = Field(None, gt=0)
    """Above this CPU load the worker takes no new calls (LiveKit's default: 0.7)."""
    idle_processes: int | None = Field(None, ge=0)
    """Job processes kept warm for the next call (LiveKit's default: one per core)."""
    drain_timeout_s: int | None = Field(None, ge=0)
    """At SIGTERM, how long the worker lets its calls finish (LiveKit's default: 1 hour)."""
    web_port: int = Field(8089, ge=1, le=65535)
    """Where `scripts/run` serves the reference web app on loopback, with no LIVEKIT_URL."""
    adaptive_interruption: bool = False
    """LiveKit's adaptive interruption detection, which sends the caller's audio to LiveKit
    Cloud's inference gateway. Off: interruptions are decided by the local VAD, and the worker
    connects to nothing but LiveKit, the models and the store."""

    # The background work (docs/embedding.md#the-background-work)
    background: bool = True
    """Run the sweeper, retention and webhook delivery in this worker's main process; off: they
    run in another process (another worker, `voxkeepctl background`)."""
    # Webhooks (docs/webhooks.md)
    webhook_urls: str = ""
    """Comma-separated receivers of the webhook events; none: nothing is sent."""
    webhook_secret: SecretStr = SecretStr("")
    """The HMAC-SHA256 key the events are signed with; needed with any URL."""
    webhook_timeout_s: float = Field(10.0, gt=0)
    webhook_retry_s: float = Field(5.0, gt=0)
    """The wait before the first retry; it doubles with each failure, up to ten minutes."""
    webhook_max_age_s: float = Field(3 * 86_400.0, gt=0)
    """An event not delivered by this age is dropped (and counted)."""

    # Retention and metrics (docs/operations.md, docs/metrics.md)
    retention_days: float | None = Field(None, gt=0)
    """Ended chats last updated longer ago than this are deleted by the sweeper; unset: kept."""
    metrics_port: int | None = Field(None, ge=0, le=65535)
    """Prometheus metrics at http://VOXKEEP_HTTP_HOST:PORT/metrics, from every process of the
    worker; unset: none."""
    metrics_token: SecretStr = SecretStr("")
    """A bearer token scrapers must send (Prometheus' `authorization`); empty: none asked, and
    on a loopback VOXKEEP_HTTP_HOST only requests addressed to it by name are answered."""

    # The console, `voxkeepctl serve` (docs/console.md)
    console_tokens: SecretStr = SecretStr("")
    """Bearer tokens, `read:TOKEN` or `admin:TOKEN`, comma-separated; none: it will not start."""
    console_host: str = "127.0.0.1"
    console_port: int = Field(8090, ge=1, le=65535)
    console_cors_origins: str = ""
    """Origins allowed to call the API from a browser (comma-separated); none: no CORS."""

    # Logs (docs/operations.md)
    log_format: Literal["json", "console"] = "console"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Standard variables
    livekit_url: str = Field("", validation_alias=_plain("LIVEKIT_URL"))
    livekit_api_key: SecretStr = Field(SecretStr(""), validation_alias=_plain("LIVEKIT_API_KEY"))
    livekit_api_secret: SecretStr = Field(
        SecretStr(""), validation_alias=_plain("LIVEKIT_API_SECRET")
    )
    openai_api_key: SecretStr = Field(SecretStr(""), validation_alias=_plain("OPENAI_API_KEY"))
    openai_base_url: str = Field("", validation_alias=_plain("OPENAI_BASE_URL"))
    deepgram_api_key: SecretStr = Field(SecretStr(""), validation_alias=_plain("DEEPGRAM_API_KEY"))
    deepgram_base_url: str = Field("", validation_alias=_plain("DEEPGRAM_BASE_URL"))
    cartesia_api_key: SecretStr = Field(SecretStr(""), validation_alias=_plain("CARTESIA_API_KEY"))
    cartesia_base_url: str = Field("", validation_alias=_plain("CARTESIA_BASE_URL"))
    eleven_api_key: SecretStr = Field(SecretStr(""), validation_alias=_plain("ELEVEN_API_KEY"))
    eleven_base_url: str = Field("", validation_alias=_plain("ELEVEN_BASE_URL"))

    @field_validator("factory")
    @classmethod
    def _import_path(cls, value: str) -> str:
        module, colon, attribute = value.partition(":")
        if value and not (colon and module and attribute.isidentifier()):
            raise ValueError("expected package.module:function")
        return value

    @field_validator(
        "http_port",
        "load_threshold",
        "idle_processes",
        "drain_timeout_s",
        "preemptive_generation",
        "retention_days",
        "metrics_port",
        "continue_after_s",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """`VOXKEEP_HTTP_PORT=` (as `config/example.env` lists it) means LiveKit's default."""
        return None if value == "" else value

    @field_validator("webhook_urls")
    @classmethod
    def _http_urls(cls, value: str) -> str:
        if any(not url.startswith(("http://", "https://")) for url in _split(value)):
            raise ValueError("expected http:// or https:// URLs, separated by commas")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _standard_secret(cls, value: SecretStr) -> SecretStr:
        """A Standard Webhooks secret (docs/webhooks.md), checked here so that a bad one stops
        the worker at start rather than every delivery."""
        if value.get_secret_value():
            signing_key(value.get_secret_value())
        return value

    @property
    def webhooks(self) -> list[str]:
        return _split(self.webhook_urls)

    def missing_for_worker(self, *, livekit: bool = True) -> list[str]:
        """The variables the worker cannot serve a call without (`livekit=False`: the models
        only, for a run that brings its own LiveKit server)."""
        wanted = {
            "LIVEKIT_URL": self.livekit_url,
            "LIVEKIT_API_KEY": self.livekit_api_key.get_secret_value(),
            "LIVEKIT_API_SECRET": self.livekit_api_secret.get_secret_value(),
        }
        missing = [name for name, value in wanted.items() if livekit and not value]
        if self.webhooks and not self.webhook_secret.get_secret_value():
            missing.append("VOXKEEP_WEBHOOK_SECRET")
        if self.factory:  # the user's factory brings its own providers
            return missing
        if not (self.openai_api_key.get_secret_value() or self.openai_base_url):
            missing.append("OPENAI_API_KEY (or OPENAI_BASE_URL)")
        if self.realtime_model:
            return missing
        vendor_keys = {
            "DEEPGRAM_API_KEY": self.stt == "deepgram" and self.deepgram_api_key,
            "CARTESIA_API_KEY": self.tts == "cartesia" and self.cartesia_api_key,
            "ELEVEN_API_KEY": self.tts == "elevenlabs" and self.eleven_api_key,
        }
        missing += [
            name
            for name, key in vendor_keys.items()
            if isinstance(key, SecretStr) and not key.get_secret_value()
        ]
        return missing


def _split(urls: str) -> list[str]:
    return [url.strip() for url in urls.split(",") if url.strip()]


def _variable(field: str) -> str:
    info = Settings.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, AliasChoices):
        return str(info.validation_alias.choices[0])
    return f"VOXKEEP_{field.upper()}"


def load_settings() -> Settings:
    """Read the settings; a bad value raises ConfigError with one line naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        raise ConfigError(f"{_variable(field)}: {first['msg']}") from None
