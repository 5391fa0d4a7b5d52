"""`run_background` (docs/embedding.md#the-background-work): in any `AgentServer`, once it has
started, the sweeper runs, and webhook delivery when receivers are set; with
`VOXKEEP_BACKGROUND=off` nothing runs and the worker says so in one line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from livekit.agents import AgentServer

from tests.test_webhooks import SECRET
from voxkeep.core.settings import Settings
from voxkeep.jobs import webhooks
from voxkeep.jobs.background import SWEEPER_TASK, run_background


def background_tasks() -> set[str]:
    names = {SWEEPER_TASK, webhooks.TASK}
    return {t.get_name() for t in asyncio.all_tasks() if t.get_name() in names and not t.done()}


@pytest.fixture
async def cancel_background() -> AsyncIterator[None]:
    yield
    for task in asyncio.all_tasks():
        if task.get_name() in (SWEEPER_TASK, webhooks.TASK):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(db_url=f"sqlite:///{tmp_path}/voxkeep.db", **values)  # type: ignore[arg-type]


async def test_a_users_server_runs_the_sweeper_and_delivery_once_it_starts(
    tmp_path: Path, cancel_background: None, caplog: pytest.LogCaptureFixture
) -> None:
    server = AgentServer()
    hooks = settings(tmp_path, webhook_urls="http://127.0.0.1:9/hooks", webhook_secret=SECRET)
    with caplog.at_level(logging.INFO):
        run_background(server, hooks)
        assert background_tasks() == set()  # nothing before the server starts
        server.emit("worker_started")  # what AgentServer.run emits once it is up
        await asyncio.sleep(0)
    assert background_tasks() == {SWEEPER_TASK, webhooks.TASK}
    (said,) = [r for r in caplog.records if r.msg == "background.started"]
    assert said.name == "voxkeep.jobs.background"


async def test_without_receivers_only_the_sweeper_runs(
    tmp_path: Path, cancel_background: None
) -> None:
    server = AgentServer()
    run_background(server, settings(tmp_path))
    server.emit("worker_started")
    await asyncio.sleep(0)
    assert background_tasks() == {SWEEPER_TASK}


async def test_with_background_off_nothing_runs_and_one_line_says_where_it_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = AgentServer()
    with caplog.at_level(logging.INFO):
        run_background(server, settings(tmp_path, background=False))
        server.emit("worker_started")
        await asyncio.sleep(0)
    assert background_tasks() == set()
    ours = [r for r in caplog.records if r.name == "voxkeep.jobs.background"]
    assert [r.msg for r in ours] == ["background.elsewhere"]
