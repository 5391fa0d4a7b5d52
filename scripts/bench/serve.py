"""Console benchmark (docs/benchmarks.md): the real `voxkeepctl serve` over a store of 1,000 chats
and 100,000 messages, one of them a 10,000-message chat. In one run:

- requests per second, p50 and p99 for the chat list, a chat page (the chat and its first 50
  messages, as the console asks for them), a full-text search and the prosody chart of the
  10,000-message chat, under concurrent clients on loopback; beside the same server answering
  its OpenAPI description (cached, no store: the floor), as a ratio;
- the time for the 10,000-message chat's page to show its first screen of transcript in
  Debian's Chromium, beside a 10-message chat's (the floor).

    .venv/bin/python scripts/bench/serve.py [--clients 16] [--seconds 5] [--db postgres-local]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from _common import percentile, print_table

from tests.live.browser import Browser
from tests.pg import PgServer
from tests.support.processes import free_port
from voxkeep.store import open_store
from voxkeep.store.records import NewChat, NewMessage

ROOT = Path(__file__).resolve().parents[2]

TOKEN = "bench-admin-token-0123456789"
WORDS = [
    "Lisbon",
    "Porto",
    "Madrid",
    "weather",
    "hotel",
    "train",
    "museum",
    "river",
    "beach",
    "dinner",
]
BIG, SMALL = "chat_big", "chat_small"


async def seed(url: str, chats: int, messages: int) -> None:
    """`chats` chats holding `messages` messages, 10,000 of them in BIG and 10 in SMALL."""
    store = await open_store(url)
    await store.migrate()
    now = time.time() - 86_400
    ids = [BIG, SMALL] + [f"chat_{n:04d}" for n in range(chats - 2)]
    sizes = {BIG: 10_000, SMALL: 10}
    rest = (messages - 10_010) // (chats - 2)
    await store.write(
        [NewChat(id=c, owner=f"caller{n % 200}", created_at=now + n) for n, c in enumerate(ids)]
    )
    for n, chat_id in enumerate(ids):
        size = sizes.get(chat_id, rest)
        for start in range(0, size, 1000):
            batch = [
                NewMessage(
                    id=f"{chat_id}_{i}",
                    chat_id=chat_id,
                    role="user" if i % 2 == 0 else "assistant",
                    content=f"About {WORDS[(n + i) % len(WORDS)]} and {WORDS[i % 7]}, turn {i}.",
                    created_at=now + n + i / 1000,
                    prosody={
                        "v": 1,
                        "pitch": {"median_hz": 150.0 + i % 40},
                        "relative": {"pitch_z": (i % 9 - 4) / 3},
                    }
                    if i % 2 == 0
                    else None,
                )  # fmt: skip
                for i in range(start, min(size, start + 1000))
            ]
            await store.write(batch)
    await store.aclose()


async def load(base: str, path: str, clients: int, seconds: float) -> tuple[float, list[float]]:
    """`clients` clients asking for `path` back to back for `seconds`: rps and latencies (ms)."""

    async def one(http: aiohttp.ClientSession) -> None:
        async with http.get(base + path) as response:
            await response.read()
            assert response.status == 200, (path, response.status)

    return await timed(one, clients, seconds)


async def first_screens(
    browser: Browser, base: str, chat_ids: list[str], repeats: int
) -> dict[str, float]:
    """Median ms from opening each chat's page to its first transcript line shown. The chats
    take turns, so that whatever else the machine does falls on each alike."""
    timings: dict[str, list[float]] = {chat_id: [] for chat_id in chat_ids}
    for n in range(repeats):
        for chat_id in chat_ids:
            await browser.do("goto", url=f"{base}/")
            await browser.do(
                "evaluate", expression=f"sessionStorage.setItem('voxkeep-console-token', '{TOKEN}')"
            )
            start = time.perf_counter()
            await browser.do("goto", url=f"{base}/?visit={n}#{chat_id}")  # a fresh page load
            await browser.do("wait", selector="[aria-label=Transcript] li")
            timings[chat_id].append((time.perf_counter() - start) * 1000)
    return {chat_id: percentile(found, 0.5) for chat_id, found in timings.items()}


def measured(label: str, rps: float, lat: list[float], floor_rps: float) -> list[str]:
    return [
        label, f"{rps:,.0f}", f"{percentile(lat, 0.5):.1f}", f"{percentile(lat, 0.99):.1f}",
        f"{rps / floor_rps:.2f}×",
    ]  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--chats", type=int, default=1_000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--db", help="postgres-local: a throwaway PostgreSQL (default SQLite)")
    args = parser.parse_args()

    server = None
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/voxkeep.db"
        if args.db == "postgres-local":
            server = await asyncio.to_thread(PgServer)
            await asyncio.to_thread(server.start)
            url = f"{server.url}/postgres"
        try:
            await run(args, url, Path(tmp), server)
        finally:
            if server is not None:
                await asyncio.to_thread(server.remove)


async def run(
    args: argparse.Namespace, url: str, folder: Path, server: PgServer | None = None
) -> None:
    started = time.perf_counter()
    await seed(url, args.chats, args.messages)
    if server is not None:
        # the statistics autovacuum gathers a minute after a bulk load, as a store in use has
        # them (without them the planner reads every match of a word before sorting the chats)
        psql = [str(server.bin / "psql"), url, "-q", "-c", "ANALYZE"]
        await asyncio.to_thread(subprocess.run, psql, check=True)
    print(f"  seeded in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    port = free_port()
    env = {**os.environ, "VOXKEEP_DB_URL": url, "VOXKEEP_CONSOLE_TOKENS": f"admin:{TOKEN}"}
    serving = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxkeep.cli.main", "serve", "--port", str(port), env=env,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        await ready(base)
        cases: list[tuple[str, str]] = [
            ("floor: the OpenAPI description (no store)", "/api/openapi.json"),
            ("chat list, 50 a page", "/api/chats?limit=50"),
            ("chat list, one owner", "/api/chats?owner=caller7&limit=50"),
            (f"chat page: the chat and its first 50 of {10_000:,} messages", ""),
            ("full-text search (chats saying a word)", "/api/chats?q=museum&limit=50"),
            (f"prosody chart of the {10_000:,}-message chat", f"/api/chats/{BIG}/prosody"),
        ]
        rows = []
        floor = 1.0
        for label, path in cases:
            print(f"  {label} …", file=sys.stderr, flush=True)
            if path == "":
                rps, lat = await chat_page(base, args.clients, args.seconds)
            else:
                rps, lat = await load(base, path, args.clients, args.seconds)
            if path == "/api/openapi.json":
                floor = rps
            rows.append(measured(label, rps, lat, floor))
        print_table(["request", "req/s", "p50 ms", "p99 ms", "vs floor"], rows)
        backend = url.split(":")[0]
        print(f"\n{args.clients} concurrent clients on loopback, {args.seconds:.0f} s each;")
        print(f"{args.chats:,} chats and {args.messages:,} messages on {backend}.")

        browser = Browser(folder)
        await browser.start()
        try:
            medians = await first_screens(browser, base, [SMALL, BIG], 15)
            small, big = medians[SMALL], medians[BIG]
        finally:
            await browser.aclose()
        print_table(
            ["first screen of a chat page in Chromium", "median ms", "vs floor"],
            [["floor: a 10-message chat", f"{small:.0f}", "1.00×"],
             ["a 10,000-message chat", f"{big:.0f}", f"{big / small:.2f}×"]],
        )  # fmt: skip
    finally:
        serving.terminate()
        await asyncio.wait_for(serving.wait(), 15)


async def chat_page(base: str, clients: int, seconds: float) -> tuple[float, list[float]]:
    """What the page asks for when it opens the big chat: the chat, then its first page."""

    async def both(http: aiohttp.ClientSession) -> None:
        for path in (f"/api/chats/{BIG}", f"/api/chats/{BIG}/messages?after_seq=0&limit=50"):
            async with http.get(base + path) as response:
                await response.read()
                assert response.status == 200

    return await timed(both, clients, seconds)


async def timed(
    work: Callable[[aiohttp.ClientSession], Awaitable[None]], clients: int, seconds: float
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as http:

        async def client() -> None:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                await work(http)
                latencies.append((time.perf_counter() - start) * 1000)

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return len(latencies) / (time.perf_counter() - began), latencies


async def ready(base: str) -> None:
    async with aiohttp.ClientSession() as http, asyncio.timeout(30):
        while True:
            try:
                headers = {"Authorization": f"Bearer {TOKEN}"}
                async with http.get(f"{base}/api/health", headers=headers) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)


if __name__ == "__main__":
    asyncio.run(main())
