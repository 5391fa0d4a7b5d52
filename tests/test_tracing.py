"""With a tracer set through LiveKit's OpenTelemetry hook (docs/metrics.md), the worker's store
transactions and control commands become spans, with kinds and codes and nothing a caller said."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from livekit.agents.telemetry import set_tracer_provider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider

from tests.conftest import chat, msg
from tests.control.test_dispatcher import CALLER, StoreSwitcher
from voxkeep.call.instrument import measured
from voxkeep.control.dispatcher import Dispatcher
from voxkeep.store import Store


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    set_tracer_provider(provider)
    yield exporter
    set_tracer_provider(NoOpTracerProvider())


async def test_commits_and_commands_become_spans(store: Store, spans: InMemorySpanExporter) -> None:
    traced = measured(store)
    c = chat("alice")
    await traced.write([c, msg(c.id, "My secret plan for Lisbon.")])
    dispatcher = Dispatcher(traced, StoreSwitcher(traced, c.id), "alice", rate=10, burst=10)
    await dispatcher.handle(CALLER, json.dumps({"v": 1, "id": "r1", "type": "ping"}).encode())
    await dispatcher.handle(CALLER, b"{nope")
    await traced.rename_chat(c.id, "Lisbon", owner="alice")

    finished = spans.get_finished_spans()
    assert [s.name for s in finished] == [
        "voxkeep.store.write", "voxkeep.control.command", "voxkeep.control.command",
        "voxkeep.store.rename_chat",
    ]  # fmt: skip
    commands = [dict(s.attributes or {}) for s in finished if s.name == "voxkeep.control.command"]
    assert [(a["voxkeep.control.type"], a["voxkeep.control.code"]) for a in commands] == [
        ("ping", "ok"), ("unknown", "bad_request"),
    ]  # fmt: skip
    assert "Lisbon" not in repr([dict(s.attributes or {}) for s in finished])
