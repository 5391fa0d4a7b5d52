"""The console in Debian's Chromium (playwright-core), served by a real `voxkeepctl serve`
process: sign in, search for a word, open the chat, see the transcript and the prosody plot
drawn, export, be refused a delete with a read-only token, and delete as admin."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.console.conftest import ADMIN, READ
from tests.live.browser import Browser
from voxkeep.core.errors import NotFound
from voxkeep.store import ANY_OWNER, Store

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-output" / "console"
PAINTED = """(() => {
  const canvas = document.querySelector('[aria-label="Prosody plot"] canvas');
  if (canvas === null) return 0;
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) inked++;
  return inked;
})()"""


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
