"""The reference web app (web/) in Debian's Chromium against the real LiveKit server, the worker
process and the stand-in models: a caller talks through a WAV-file microphone, starts a new
chat, resumes, renames, deletes, hangs up and comes back. Screenshots go to test-output/."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.live.browser import ROOT, Browser, BrowserError
from tests.live.conftest import StartWorker
from tests.live.harness import CONTINUING, eventually, said
from tests.pg import PgServer
from tests.support.processes import ModelServer, clean_env, free_port
from voxkeep.core.errors import NotFound
from voxkeep.local.livekit_server import LocalServer
from voxkeep.sim.speech import Voice
from voxkeep.store import ANY_OWNER, Store

LISBON = "I would like to plan a trip to Lisbon."
PORTO = "Now tell me about Porto instead."
ROME = "What about a weekend in Rome?"
SHOTS = ROOT / "test-output" / "web"
QUIET_S = 3.0
TURN_S = 45.0
"""How long a turn may take from the microphone to the stored answer on the page."""


@contextlib.asynccontextmanager
async def serve_app(server: LocalServer, db_url: str) -> AsyncIterator[str]:
    """The app server as `scripts/run` starts it: the built app and its token endpoint."""
    port = free_port()
    env = clean_env(
        LIVEKIT_URL=server.url,
        LIVEKIT_API_KEY=server.api_key,
        LIVEKIT_API_SECRET=server.api_secret,
        VOXKEEP_DB_URL=db_url,
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxkeep.local.webapp", "--port", str(port), env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    first = await asyncio.wait_for(proc.stdout.readline(), 30)
    try:
        assert first.startswith(b"web app: "), first
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@pytest.fixture
async def web_app(livekit_server: LocalServer, db_url: str, reader: Store) -> AsyncIterator[str]:
    async with serve_app(livekit_server, db_url) as url:
        yield url


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    page = Browser(tmp_path)
    await page.start()
    yield page
    # leave the call as a caller does, so the worker's job ends at once (a browser that just
    # closes is noticed by the server only after its departure timeout, and the worker's stop
    # would wait for the job)
    with contextlib.suppress(BrowserError):
        await page.do("click", timeout_s=2, selector="[data-testid=hang-up]")
    await page.aclose()


async def chat_id(page: Browser) -> str | None:
    return await page.attribute("[data-testid=transcript]", "data-chat-id")


async def lines(page: Browser) -> list[str]:
    """The stored lines of the transcript on the page, in order."""
    return [t.strip() for t in await page.texts(".line:not(.live) .text")]


async def turn(page: Browser, text: str, answer: str) -> None:
    """Say `text`, and wait until the page shows it and the agent's answer."""
    await page.say(text)

    async def answered() -> bool | None:
        shown = await lines(page)
        return True if shown[-2:] == [text, answer] else None

    await page.until(answered, TURN_S, f"{text!r} and its answer on the page")


async def call(page: Browser, web_app: str) -> str:
    """Open the app as alice, press Call, and wait for the agent's chat."""
    await page.do("goto", url=f"{web_app}?identity=alice&mic=raw")
    await page.click("[data-testid=call]")
    await page.shows("[data-testid=connection][data-state=connected]", 30)
    return await page.until(lambda: chat_id(page), 30, "the agent's chat")


async def moved_on(page: Browser, old: str) -> str:
    async def other() -> str | None:
        now = await chat_id(page)
        return now if now not in (None, old) else None

    return await page.until(other, 60, "a new chat")


async def test_a_caller_talks_starts_a_new_chat_resumes_renames_deletes_comes_back_and_erases(
    start_worker: StartWorker,
    model_server: ModelServer,
    web_app: str,
    browser: Browser,
    reader: Store,
) -> None:
    for text in (LISBON, PORTO, ROME):
        await model_server.learn(text, Voice())
    await model_server.script(  # (a new chat opens with a greeting)
        ["Lisbon is lovely.", "Porto has port.", "Hello again.", "Rome is eternal."]
    )
    await start_worker()

    first = await call(browser, web_app)
    await turn(browser, LISBON, "Lisbon is lovely.")
    await turn(browser, PORTO, "Porto has port.")
    # each of the caller's lines shows how it was said: pitch, loudness and rate
    measures = await browser.texts(".line.user [data-testid=prosody] .measure .label")
    assert measures == ["pitch", "loudness", "rate"] * 2
    await browser.screenshot(SHOTS / "call.png")

    # New Chat: the old chat is kept and listed, the transcript starts over
    await browser.click("[data-testid=new-chat]")
    second = await moved_on(browser, first)
    await browser.shows(f"[data-testid=chat-list] [data-chat-id='{first}']")
    await turn(browser, ROME, "Rome is eternal.")
    await browser.screenshot(SHOTS / "new-chat.png")

    # resume the first chat from the list: the next model request holds its turns
    asked = len(await model_server.chat_requests())
    await browser.click(f"[data-chat-id='{first}'] .open")
    await browser.until(lambda: _is(chat_id(browser), first), 30, "the first chat again")
    await turn(browser, PORTO, "You said: " + PORTO)
    resumed = (await model_server.chat_requests())[asked:]
    assert said(resumed[-1])[:4] == [
        ("user", LISBON), ("assistant", "Lisbon is lovely."),
        ("user", PORTO), ("assistant", "Porto has port."),
    ]  # fmt: skip

    # rename the first chat inline, delete the second with its confirmation
    await browser.click(f"[data-chat-id='{first}'] [aria-label^=Rename]")
    await browser.do("fill", selector="input[aria-label='Chat title']", value="Portugal trip")
    await browser.do("press", selector="input[aria-label='Chat title']", key="Enter")
    await browser.shows(f"[data-chat-id='{first}'] .title:text('Portugal trip')")
    await browser.click(f"[data-chat-id='{second}'] [aria-label^=Delete]")
    await browser.click(f"[data-chat-id='{second}'] button:text('Yes, delete')")
    await browser.do("wait", selector=f"[data-chat-id='{second}']", state="detached")
    assert (await reader.get_chat(first, owner="alice")).title == "Portugal trip"
    assert [c.id for c in (await reader.list_chats(owner="alice", limit=10)).chats] == [first]

    # hang up: the transcript stays; Resume brings the caller back into the same chat
    await browser.click("[data-testid=hang-up]")
    await browser.shows("[data-testid=resume]", 30)
    shown = await browser.until(
        lambda: _nonempty(lines(browser)), 15, "the transcript after hanging up"
    )
    assert shown[:2] == [LISBON, "Lisbon is lovely."]
    await browser.screenshot(SHOTS / "after-hang-up.png")
    await browser.click(f"[data-chat-id='{first}'] .open")  # a past chat, read out of a call
    await browser.shows("[data-testid=transcript] h1:text('Portugal trip')")
    assert (await lines(browser))[:2] == [LISBON, "Lisbon is lovely."]
    await browser.click("[data-testid=resume]")
    await browser.shows("[data-testid=connection][data-state=connected]", 30)
    assert await browser.until(lambda: _is(chat_id(browser), first), 30, "the same chat") == first

    async def kept() -> int | None:
        chat = await reader.get_chat(first, owner=ANY_OWNER)
        return chat.message_count if chat.message_count >= 6 else None

    assert await eventually(kept, 10, "the resumed chat's messages") >= 6

    # erase my history: the app asks with the agent's count first; then every chat of alice
    # goes, nothing of hers is left to find, and the call goes on in a new chat
    await browser.click("[data-testid=erase]")
    await browser.shows("[data-testid=erase-confirm]:text('Erase 1 chat for good?')")
    assert (await reader.get_chat(first, owner="alice")).message_count >= 6  # asked, not done
    await browser.click("[data-testid=erase-confirm] button:text-is('Erase')")
    await moved_on(browser, first)
    await browser.do("wait", selector=f"[data-chat-id='{first}']", state="detached")
    with pytest.raises(NotFound):
        await reader.get_chat(first, owner="alice")
    assert await reader.search("Lisbon", owner="alice") == []
    await browser.screenshot(SHOTS / "after-erase.png")


async def _is(value: object, expected: str) -> str | None:
    got = await value  # type: ignore[misc]
    return expected if got == expected else None


async def _nonempty(value: object) -> list[str] | None:
    got: list[str] = await value  # type: ignore[misc]
    return got or None


async def test_new_chat_shows_the_agents_error_and_a_retry_that_works(
    start_worker: StartWorker,
    model_server: ModelServer,
    livekit_server: LocalServer,
    pg_server: PgServer,
    pg_store: tuple[str, Store],
    browser: Browser,
) -> None:
    url, store = pg_store
    await model_server.learn(LISBON, Voice())
    await model_server.script(["Lisbon is lovely.", "Hello again."])
    await start_worker(db=url)
    async with serve_app(livekit_server, url) as web_app:
        first = await call(browser, web_app)
        await turn(browser, LISBON, "Lisbon is lovely.")

        await asyncio.to_thread(pg_server.stop, "immediate")  # the store goes down mid-call
        try:
            await browser.click("[data-testid=new-chat]")
            await browser.shows("[data-testid=new-chat-error]", 60)
            (shown,) = await browser.texts("[data-testid=new-chat-error]")
            assert "New Chat failed (unavailable)" in shown  # the agent's own answer
            assert await chat_id(browser) == first
            await browser.screenshot(SHOTS / "new-chat-error.png")
        finally:
            await asyncio.to_thread(pg_server.start)

        await browser.click("[data-testid=new-chat-retry]")
        await moved_on(browser, first)
        await browser.do("wait", selector="[data-testid=new-chat-error]", state="detached")
        kept = await store.get_chat(first, owner="alice")
        assert (kept.status, kept.end_reason) == ("closed", "new_chat")


async def test_two_quick_presses_of_new_chat_make_one_new_chat(
    start_worker: StartWorker,
    model_server: ModelServer,
    web_app: str,
    browser: Browser,
) -> None:
    await model_server.learn(LISBON, Voice())
    await model_server.script(["Lisbon is lovely.", "Hello again.", "Hello once more."])
    await start_worker()
    first = await call(browser, web_app)
    await turn(browser, LISBON, "Lisbon is lovely.")
    asked = len(await model_server.chat_requests())

    await browser.do("click", selector="[data-testid=new-chat]", count=2)
    await moved_on(browser, first)

    async def greeted() -> bool | None:
        return True if await lines(browser) == ["Hello again."] else None

    await browser.until(greeted, 30, "the new chat's greeting")
    await asyncio.sleep(QUIET_S)  # a second new chat would have greeted by now
    assert await lines(browser) == ["Hello again."]
    assert len(await model_server.chat_requests()) - asked == 1  # one greeting: one new chat


async def test_the_page_says_the_agent_was_cut_off_and_then_that_it_is_back(
    start_worker: StartWorker, model_server: ModelServer, web_app: str, browser: Browser
) -> None:
    """The worker serving the call dies; another worker's agent continues it (docs/resume.md),
    and the caller sees both moments, then talks on in the same chat."""
    await model_server.learn(LISBON, Voice())
    await model_server.learn(PORTO, Voice())
    await model_server.script(["Lisbon is lovely.", "Porto is lovely too."])
    serving = await start_worker(**CONTINUING)
    first = await call(browser, web_app)
    await start_worker(**CONTINUING)  # registered after the call began
    await turn(browser, LISBON, "Lisbon is lovely.")
    serving.kill()
    await browser.shows("[data-testid=agent-status][data-state=reconnecting]", 45)
    await browser.screenshot(SHOTS / "agent-reconnecting.png")
    await browser.shows("[data-testid=agent-status][data-state=resumed]", 45)
    await browser.screenshot(SHOTS / "agent-resumed.png")
    assert await chat_id(browser) == first
    await turn(browser, PORTO, "Porto is lovely too.")
    assert await lines(browser) == [LISBON, "Lisbon is lovely.", PORTO, "Porto is lovely too."]
