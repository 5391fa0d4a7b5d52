"""Fault run (docs/store.md): nothing acknowledged is ever lost, on the real LiveKit server.

    .venv/bin/python scripts/bench/faults.py [--callers 4] [--seconds 180] [--seed 1]

The worker (`python -m voxkeep start`) serves callers on LiveKit's rtc client speaking espeak-ng
speech in real time, with the stand-in model server, for `--seconds`. Every few seconds a fault
is injected, in turn:

- `kill`: SIGKILL of one of the worker's job processes (its callers join again and resume);
- `store`: the store stopped for a few seconds (another process holds SQLite's write lock), then
  back;
- `disk`: the journal's disk filled (a ballast file on the small tmpfs it lives on) while the
  store is stopped, then both back;
- `switch`: `new_chat` from a caller's app;
- `delete`: a caller's current chat deleted from another device;
- `together`: two new callers starting at the same moment on the worker.

Each caller keeps its own log of what was acknowledged: after each turn it asks the agent for
its chat (`get_chat`, which answers with everything said before the request) and notes every
message it was shown. At the end the checker reads the store: a message acknowledged is
**lost** if it is not there (and its chat was not deleted on purpose), **duplicated** if it is
there more than once, **misfiled** if it is in another chat than the one it was acknowledged in.
All three must be 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from _common import print_table, start_servers

from tests.support.caller import VOICE, Caller, token
from tests.support.processes import ModelServer, Worker, clean_env, free_port
from voxkeep.core.logs import configure_logging
from voxkeep.local.livekit_server import LocalServer
from voxkeep.store import ANY_OWNER, Store, open_store
from voxkeep.store.writer import Writer

ROOT = Path(__file__).resolve().parents[2]
LOCK_HOLDER = ROOT / "tests" / "store" / "lock_holder.py"
FAULTS = ["kill", "store", "switch", "disk", "delete", "together"]
OUTAGE_S = 4.0
TURN_LIMIT_S = 30.0


WORDS = (
    "apple",
    "banana",
    "cherry",
    "dolphin",
    "eagle",
    "falcon",
    "guitar",
    "harbor",
    "island",
    "jungle",
    "kettle",
    "lemon",
    "mango",
    "needle",
    "orange",
    "pepper",
    "quartz",
    "river",
    "saddle",
    "tiger",
    "umbrella",
    "violin",
    "walnut",
    "yellow",
    "zebra",
    "anchor",
)


def said(line: int) -> str:
    """The `line`th utterance: two words no other utterance pairs, so the stand-in speech
    recognizer never takes one for another (numbers alone sound too alike)."""
    first, second = WORDS[line % len(WORDS)], WORDS[(line // len(WORDS) + 7) % len(WORDS)]
    return f"Please pack the {first} and the {second}."


Said = tuple[str, float]
"""A message by its content and the moment it finalized: one per utterance, even where the
stand-in speech recognizer takes two utterances for the same words."""


@dataclass
class Acked:
    chat_id: str
    said: Said


@dataclass
class Log:
    """One caller's own record of what the agent acknowledged."""

    identity: str
    acked: dict[Said, Acked] = field(default_factory=dict)
    turns: int = 0
    missed: int = 0
    rejoins: int = 0


class Run:
    def __init__(self, folder: Path, server: LocalServer, model: ModelServer, seed: int) -> None:
        self.folder, self.server, self.model = folder, server, model
        self.random = random.Random(seed)
        self.db_path = folder / "voxkeep.db"
        self.disk = folder / "journal-disk"
        self.faults: Counter[str] = Counter()
        self.logs: list[Log] = []
        self.deleted: set[str] = set()
        self.line = 0
        self.callers: dict[str, Caller] = {}
        self.worker: Worker | None = None
        self.tasks: list[asyncio.Task[None]] = []

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.db_path}"

    async def start_worker(self) -> Worker:
        self.disk.mkdir()
        mount = ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(self.disk)]
        mounted = await asyncio.to_thread(subprocess.run, mount, capture_output=True)
        if mounted.returncode != 0:
            why = mounted.stderr.decode(errors="replace").strip()
            raise SystemExit(f"faults.py mounts a tmpfs for the journal (as root): {why}")
        env = clean_env(
            LIVEKIT_URL=self.server.url, LIVEKIT_API_KEY=self.server.api_key,
            LIVEKIT_API_SECRET=self.server.api_secret, OPENAI_BASE_URL=self.model.base_url,
            OPENAI_API_KEY="faults", VOXKEEP_DB_URL=self.db_url,
            VOXKEEP_JOURNAL_DIR=str(self.disk / "journal"), VOXKEEP_HTTP_HOST="127.0.0.1",
            VOXKEEP_HTTP_PORT=str(free_port()), VOXKEEP_LOAD_THRESHOLD="inf",
            VOXKEEP_IDLE_PROCESSES="2", VOXKEEP_WRITER_QUEUE_MAX="20",
            VOXKEEP_RESUME_WINDOW_S="600",
        )  # fmt: skip
        worker = Worker(env, self.folder / "worker.log")
        await worker.start()
        self.worker = worker
        return worker

    # --- callers ------------------------------------------------------------------------

    async def join(self, log: Log) -> Caller:
        room = f"faults-{uuid.uuid4().hex[:8]}"
        caller = Caller(self.server.url, token(self.server.api_key, self.server.api_secret,
                                               room, log.identity), log.identity)  # fmt: skip
        await caller.join()
        await caller.agent(60)
        await caller.started(1, 60)
        self.callers[log.identity] = caller
        return caller

    async def talk(self, log: Log, until: float) -> None:
        """Turns until `until`; after each, the agent's own account of the chat, noted. A call
        whose agent went away (its process killed) is joined again, and resumes."""
        caller: Caller | None = None
        while time.monotonic() < until:
            try:
                if caller is None or caller.agent_participant() is None:
                    if caller is not None:
                        log.rejoins += 1
                        with contextlib.suppress(Exception):
                            await caller.leave()
                    caller = await self.join(log)
                self.line += 1
                text = said(self.line)
                await self.model.learn(text, VOICE)
                async with asyncio.timeout(TURN_LIMIT_S):
                    await caller.turn(text)
                log.turns += 1
                await self.note(caller, log)
            except (TimeoutError, RuntimeError, ConnectionError) as exc:
                log.missed += 1
                print(f"{log.identity}: turn missed: {type(exc).__name__}: {exc}", file=sys.stderr)
                if caller is not None and caller.agent_participant() is not None:
                    continue  # a slow turn (the store was down): the call goes on
        if caller is not None:
            with contextlib.suppress(Exception):
                await self.note(caller, log)
            await caller.leave()

    async def note(self, caller: Caller, log: Log) -> None:
        chat_id = await caller.chat_id()
        reply = await caller.command(
            {"v": 1, "id": uuid.uuid4().hex[:8], "type": "get_chat", "chat_id": chat_id,
             "limit": 100}
        )  # fmt: skip
        if reply.get("type") != "get_chat.ok":
            return  # (busy, unavailable: asked again after the next turn)
        for message in reply["messages"]:
            if message["role"] == "user" and message.get("content"):
                said = (message["content"], message["created_at"])
                log.acked.setdefault(said, Acked(chat_id, said))

    # --- faults -------------------------------------------------------------------------

    async def inject(self, until: float, every_s: float) -> None:
        turn = 0
        while time.monotonic() + every_s < until:
            await asyncio.sleep(every_s)
            kind = FAULTS[turn % len(FAULTS)]
            turn += 1
            try:
                await getattr(self, f"fault_{kind}")(until)
                self.faults[kind] += 1
            except Exception as exc:  # noqa: BLE001 - a fault that could not be injected: said
                print(f"fault {kind} not injected: {type(exc).__name__}: {exc}", file=sys.stderr)

    async def fault_kill(self, until: float) -> None:
        assert self.worker is not None
        serving = {e["pid"] for e in self.worker.events_named("call.started")}  # job processes
        alive = sorted(pid for pid in serving if psutil.pid_exists(pid))
        os.kill(self.random.choice(alive), signal.SIGKILL)

    async def fault_store(self, until: float) -> None:
        async with self.store_stopped():
            await asyncio.sleep(OUTAGE_S)

    async def fault_disk(self, until: float) -> None:
        ballast = self.disk / "ballast"
        async with self.store_stopped():
            fill = ["dd", "if=/dev/zero", f"of={ballast}", "bs=64k"]
            await asyncio.to_thread(subprocess.run, fill, capture_output=True)
            await asyncio.sleep(OUTAGE_S)
            ballast.unlink(missing_ok=True)

    async def fault_switch(self, until: float) -> None:
        caller = self.random.choice(list(self.callers.values()))
        await caller.command({"v": 1, "id": uuid.uuid4().hex[:8], "type": "new_chat"})

    async def fault_delete(self, until: float) -> None:
        caller = self.random.choice(list(self.callers.values()))
        chat_id = await caller.chat_id(5)
        self.deleted.add(chat_id)  # (before: what the caller notes from now on may go with it)
        store = await open_store(self.db_url)
        try:
            await store.delete_chat(chat_id, owner=caller.identity)
        finally:
            await store.aclose()

    async def fault_together(self, until: float) -> None:
        pair = [Log(f"pair{len(self.logs)}-{i}") for i in range(2)]
        self.logs += pair
        self.tasks += [asyncio.create_task(self.talk(log, until)) for log in pair]

    @contextlib.asynccontextmanager
    async def store_stopped(self) -> AsyncIterator[None]:
        holder = await asyncio.create_subprocess_exec(
            sys.executable, str(LOCK_HOLDER), str(self.db_path),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert holder.stdout is not None and holder.stdin is not None
        await asyncio.wait_for(holder.stdout.readline(), 10)
        try:
            yield
        finally:
            holder.stdin.close()
            await holder.wait()

    # --- the run and the check ----------------------------------------------------------

    async def run(self, callers: int, seconds: float) -> None:
        until = time.monotonic() + seconds
        self.logs = [Log(f"caller{i}") for i in range(callers)]
        self.tasks = [asyncio.create_task(self.talk(log, until)) for log in self.logs]
        faults = asyncio.create_task(self.inject(until, max(8.0, seconds / 18)))
        while not all(t.done() for t in self.tasks):  # (a pair may join meanwhile)
            await asyncio.gather(*self.tasks, return_exceptions=True)
        await faults

    async def check(self, store: Store) -> tuple[int, int, int, int]:
        where: dict[Said, list[str]] = {}
        for log in self.logs:
            chats = (await store.list_chats(owner=log.identity, limit=1000)).chats
            for chat in chats:
                for m in (await store.messages(chat.id, owner=ANY_OWNER)).messages:
                    if m.role == "user" and m.content:
                        where.setdefault((m.content, m.created_at), []).append(chat.id)
        acked = [a for log in self.logs for a in log.acked.values()]
        lost = doubled = misfiled = 0
        for a in acked:
            found = where.get(a.said, [])
            wrong = ""
            if not found and a.chat_id not in self.deleted:
                lost, wrong = lost + 1, "lost"
            elif len(found) > 1:
                doubled, wrong = doubled + 1, "duplicated"
            elif found and found[0] != a.chat_id:
                misfiled, wrong = misfiled + 1, "misfiled"
            if wrong:  # (the bench's own lines: no caller's words reach the worker's logs)
                print(f"{wrong}: {a.said} acknowledged in {a.chat_id}, stored in {found}")
        return len(acked), lost, doubled, misfiled


async def main(args: argparse.Namespace) -> int:
    configure_logging("WARNING")
    folder = Path(tempfile.mkdtemp(prefix="voxkeep-faults-"))
    server, model = await start_servers(folder)
    run = Run(folder, server, model, args.seed)
    worker = None
    try:
        store = await open_store(run.db_url)
        await store.migrate()
        worker = await run.start_worker()
        await run.run(args.callers, args.seconds)
        await worker.stop()
        worker = None
        # what is left in the journal, replayed as the next job process on this machine would
        writer = await Writer.start(await open_store(run.db_url), run.disk / "journal")
        await asyncio.wait_for(writer.flush(), 60)
        await writer.aclose()
        acked, lost, doubled, misfiled = await run.check(store)
        await store.aclose()
    finally:
        if worker is not None:
            await worker.stop()
        await model.aclose()
        server.stop()
        if server.log is not None:
            server.log.close()
        await asyncio.to_thread(subprocess.run, ["umount", "-l", str(run.disk)], check=False)
    turns = sum(log.turns for log in run.logs)
    print_table(["operations", "count"], [
        ["callers", len(run.logs)], ["turns answered", turns],
        ["turns missed (a fault in the way)", sum(log.missed for log in run.logs)],
        ["calls joined again after a kill", sum(log.rejoins for log in run.logs)],
        ["messages acknowledged", acked],
    ])  # fmt: skip
    print_table(["fault", "injected"], [[kind, run.faults[kind]] for kind in FAULTS])
    print_table(["lost", "duplicated", "misfiled"], [[lost, doubled, misfiled]])
    if args.keep:
        print(f"\nthe run's folder (worker and server logs): {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if lost == doubled == misfiled == 0 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the logs")
    sys.exit(asyncio.run(main(parser.parse_args())))
