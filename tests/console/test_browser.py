"""The console in Debian's Chromium (playwright-core), served by a real `agentctl serve`
process: sign in, search for a word, open the chat, see the transcript and the prosody plot
drawn, export, be refused a delete with a read-only token, and delete as admin."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from agent.errors import NotFound
from agent.sim.processes import free_port, hang_up
from agent.store import ANY_OWNER, Store, open_store
from agent.store.records import NewChat, NewMessage
from tests.live.browser import Browser

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-output" / "console"
READ, ADMIN = "read-token-0123456789abcdef", "admin-token-0123456789abcdef"
PAINTED = """(() => {
  const canvas = document.querySelector('[aria-label="Prosody plot"] canvas');
  if (canvas === null) return 0;
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) inked++;
  return inked;
})()"""


TURNS = [
    ("I want to see Lisbon in May.", (0.0, 0.2, -0.3)),
    ("Is it warm enough to swim?", (1.4, 1.1, 0.9)),
    ("Then book the riverside hotel.", (-0.6, -0.4, 0.2)),
]


def prosody(pitch_z: float, loudness_z: float, rate_z: float) -> dict[str, object]:
    return {
        "v": 1,
        "pitch": {"median_hz": 170 + 20 * pitch_z},
        "loudness": {"mean_db": -22.0},
        "rate": {"words_per_s": 2.4, "source": "transcript"},
        "pauses": {"count": 1, "total_s": 0.4},
        "relative": {"pitch_z": pitch_z, "loudness_z": loudness_z, "rate_z": rate_z},
    }


async def seed(store: Store) -> None:
    """alice's call about Lisbon (three measured turns, a tool call, an interrupted answer),
    and 30 other chats around it."""
    now = time.time()
    lisbon = NewChat(id="chat_lisbon", owner="alice", created_at=now - 600)
    lines: list[NewMessage] = []
    for n, (text, z) in enumerate(TURNS):
        at = now - 590 + 20 * n
        lines.append(
            NewMessage(id=f"u{n}", chat_id=lisbon.id, role="user", content=text, created_at=at,
                       prosody=prosody(*z))
        )  # fmt: skip
        lines.append(
            NewMessage(id=f"a{n}", chat_id=lisbon.id, role="assistant", created_at=at + 5,
                       content=f"Answer {n}: lovely, sunny, booked.", interrupted=n == 1)
        )  # fmt: skip
    lines.append(
        NewMessage(id="t1", chat_id=lisbon.id, role="tool", tool_name="book_hotel",
                   tool_call={"hotel": "riverside"}, tool_result={"ok": True},
                   created_at=now - 500)
    )  # fmt: skip
    others = [NewChat(id=f"chat_{n}", owner=f"caller{n}", created_at=now - n) for n in range(30)]
    await store.write([lisbon, *lines, *others])
    await store.write(
        [NewMessage(id=f"o{n}", chat_id=c.id, role="user", content=f"Porto {n}",
                    created_at=now - n) for n, c in enumerate(others)]
    )  # fmt: skip


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[tuple[str, Store]]:
    """`agentctl serve` on a seeded store, as an operator starts it; its URL and the store."""
    url = f"sqlite:///{tmp_path}/agent.db"
    store = await open_store(url)
    await store.migrate()
    await seed(store)
    port = free_port()
    env = {**os.environ, "AGENT_DB_URL": url, "AGENT_CONSOLE_TOKENS": f"read:{READ},admin:{ADMIN}"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent.cli.main", "serve", "--port", str(port), env=env,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    healthy: list[bool] = []

    async def probe() -> None:
        async with aiohttp.ClientSession() as http:
            while not healthy:
                try:
                    headers = {"Authorization": f"Bearer {READ}"}
                    async with http.get(f"{base}/api/health", headers=headers) as response:
                        healthy.append(response.status == 200)
                except aiohttp.ClientError:
                    await asyncio.sleep(0.2)

    async with asyncio.timeout(30):
        await probe()
    yield base, store
    await hang_up(process)
    await store.aclose()


async def test_an_operator_finds_reads_exports_and_deletes_a_chat_in_the_browser(
    console: tuple[str, Store], tmp_path: Path
) -> None:
    base, store = console
    browser = Browser(tmp_path)
    await browser.start()
    try:
        await browser.do("goto", url=base)
        await browser.do("fill", selector="[aria-label=Token]", value="wrong-token-0123456789")
        await browser.click("button[type=submit]")
        await browser.shows("text=That token is not known.")

        await browser.do("fill", selector="[aria-label=Token]", value=READ)
        await browser.click("button[type=submit]")
        await browser.shows(".chat-list li")
        await browser.do("fill", selector="[aria-label=Search]", value="riverside")
        await browser.click("text=Filter")
        await browser.until(
            lambda: _only(browser, ".chat-list li", "I want to see Lisbon"), 15, "the search"
        )
        await browser.click(".chat-list li a")
        await browser.shows("[aria-label=Transcript] li.user")
        said = await browser.texts("[aria-label=Transcript] li")
        assert any("Is it warm enough to swim?" in line for line in said)
        assert sum("interrupted" in line for line in said) == 1
        assert await browser.texts("[aria-label=Transcript] details summary") == ["book_hotel call"]
        inked = await browser.until(_painted(browser), 15, "the prosody plot to be drawn")
        assert inked > 500
        await browser.click("[aria-label=Transcript] li.user >> nth=1")
        figures = " ".join(await browser.texts("[aria-label=Prosody]"))
        assert "198 Hz (+1.40σ)" in figures
        await browser.screenshot(SHOTS / "chat.png")

        exported = await browser.do("download", selector="text=Export md")
        assert exported["name"] == "chat_lisbon.md"
        assert "Then book the riverside hotel." in exported["text"]

        await browser.do("dialogs")
        await browser.click("text=Delete")
        await browser.shows("text=Not allowed with a read-only token.")
        assert (await store.get_chat("chat_lisbon", owner=ANY_OWNER)).message_count == 7

        await browser.click("text=Sign out")
        await browser.do("fill", selector="[aria-label=Token]", value=ADMIN)
        await browser.click("button[type=submit]")
        await browser.shows("[aria-label=Transcript] li.user")
        await browser.click("text=Delete")
        await browser.shows("text=Pick a chat.")
        with pytest.raises(NotFound):
            await store.get_chat("chat_lisbon", owner=ANY_OWNER)
        await browser.screenshot(SHOTS / "after-delete.png")
    finally:
        await browser.aclose()


async def _only(browser: Browser, selector: str, title: str) -> bool | None:
    texts = await browser.texts(selector)
    return True if len(texts) == 1 and title in texts[0] else None


def _painted(browser: Browser) -> Callable[[], Awaitable[int | None]]:
    async def probe() -> int | None:
        inked = int(await browser.do("evaluate", expression=PAINTED))
        return inked if inked > 0 else None

    return probe
