"""`voxkeepctl` history and db commands (docs/operations.md) on a real temporary database."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import chat, msg
from voxkeep.cli.main import main
from voxkeep.core.ids import new_call_id
from voxkeep.store import ANY_OWNER, migrations, open_store
from voxkeep.store.records import NewCall

VOXKEEPCTL = str(Path(sys.executable).with_name("voxkeepctl"))
LATEST = len(migrations.load("sqlite"))
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@dataclass
class Seeded:
    url: str
    lisbon: str
    porto: str
    bobs: str


@pytest.fixture
def db(tmp_path: Path) -> Seeded:
    url = f"sqlite:///{tmp_path}/voxkeep.db"

    async def seed() -> Seeded:
        store = await open_store(url)
        await store.migrate()
        lisbon, porto, bobs = chat("alice", at=1_790_000_000.0), chat("alice"), chat("bob")
        await store.write(
            [
                lisbon,
                porto,
                bobs,
                msg(lisbon.id, "I'd like to plan a trip to Lisbon.", at=1_790_000_001.0),
                msg(lisbon.id, "Sure, when?", role="assistant", at=1_790_000_002.0),
                msg(lisbon.id, "In May, with the kids.", at=1_790_000_003.0),
                msg(porto.id, "What's the weather in Porto?"),
                msg(bobs.id, "Lisbon for bob"),
            ]
        )
        await store.close_chat(lisbon.id, status="closed", end_reason="hangup", at=1_790_000_004.0)
        await store.aclose()
        return Seeded(url, lisbon.id, porto.id, bobs.id)

    return asyncio.run(seed())


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], db: Seeded, *argv: str) -> object:
    code, out, err = run(capsys, "--json", "--db", db.url, *argv)
    assert (code, err) == (0, ""), err
    return json.loads(out)


def test_db_migrate_applies_once_then_says_nothing_to_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/new.db"
    assert run(capsys, "--db", url, "db", "migrate")[:2] == (
        0,
        f"applied {', '.join(map(str, range(1, LATEST + 1)))}; schema is at version {LATEST}\n",
    )
    code, out, _ = run(capsys, "--json", "--db", url, "db", "migrate")
    assert (code, json.loads(out)) == (0, {"applied": [], "version": LATEST})


def test_history_commands_on_an_unmigrated_database_say_to_migrate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--db", f"sqlite:///{tmp_path}/new.db", "chats", "list")
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and "voxkeepctl db migrate" in err
    code, out, _ = run(capsys, "--db", f"sqlite:///{tmp_path}/new.db", "db", "check")
    assert code == 1 and "at schema version 0" in out


def test_json_and_db_work_after_the_command_as_people_type_them(
    db: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    before = run_json(capsys, db, "chats", "list", "--owner", "alice")
    for argv in (
        ["chats", "list", "--owner", "alice", "--json", "--db", db.url],
        ["chats", "list", f"--db={db.url}", "--json", "--owner", "alice"],
    ):
        code, out, err = run(capsys, *argv)
        assert (code, err) == (0, "") and json.loads(out) == before


def test_version_is_the_installed_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"voxkeepctl {importlib.metadata.version('voxkeep')}\n"


def test_chats_list_shows_a_table_and_json(db: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--db", db.url, "chats", "list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == [
        "ID",
        "OWNER",
        "STATUS",
        "MESSAGES",
        "UPDATED",
        "TITLE",
    ]
    assert len(lines) == 4 and lines[-1].startswith(db.lisbon)  # least recently updated last
    listed = run_json(capsys, db, "chats", "list", "--owner", "alice")
    assert isinstance(listed, dict) and listed["next_cursor"] is None
    first = listed["chats"][-1]
    assert set(first) >= {
        "id",
        "owner",
        "title",
        "status",
        "end_reason",
        "created_at",
        "updated_at",
        "ended_at",
        "message_count",
    }
    assert (first["id"], first["status"], first["end_reason"], first["message_count"]) == (
        db.lisbon,
        "closed",
        "hangup",
        3,
    )
    assert first["title"] == "I'd like to plan a trip to Lisbon."
    assert all(ISO.match(first[k]) for k in ("created_at", "updated_at", "ended_at"))
    closed = run_json(capsys, db, "chats", "list", "--status", "closed")
    assert [c["id"] for c in closed["chats"]] == [db.lisbon]  # type: ignore[index]


def test_chats_list_pages_with_a_cursor(db: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    page1 = run_json(capsys, db, "chats", "list", "--limit", "2")
    assert isinstance(page1, dict) and len(page1["chats"]) == 2 and page1["next_cursor"]
    page2 = run_json(capsys, db, "chats", "list", "--limit", "2", "--cursor", page1["next_cursor"])
    assert isinstance(page2, dict) and page2["next_cursor"] is None
    ids = [c["id"] for c in page1["chats"] + page2["chats"]]
    assert sorted(ids) == sorted([db.lisbon, db.porto, db.bobs])


def test_chats_show_prints_the_conversation(db: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--db", db.url, "chats", "show", db.lisbon)
    assert code == 0 and "Sure, when?" in out and "In May, with the kids." in out
    shown = run_json(capsys, db, "chats", "show", db.lisbon)
    assert isinstance(shown, dict) and shown["chat"]["id"] == db.lisbon
    assert [(m["seq"], m["role"]) for m in shown["messages"]] == [
        (1, "user"),
        (2, "assistant"),
        (3, "user"),
    ]
    assert set(shown["messages"][0]) == {
        "seq",
        "role",
        "content",
        "created_at",
        "interrupted",
        "tool_name",
        "prosody",
    }


def test_chats_export_in_every_format_with_iso_times(
    db: Seeded, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, md, _ = run(capsys, "--db", db.url, "chats", "export", db.lisbon, "--format", "md")
    assert code == 0 and md.startswith("# I'd like to plan a trip to Lisbon.")
    assert "**2. assistant** · 2026-09-21T" in md and "Sure, when?" in md
    doc = run_json(capsys, db, "chats", "export", db.lisbon, "--format", "json")
    assert isinstance(doc, dict) and len(doc["messages"]) == 3
    assert doc["messages"][0]["created_at"] == "2026-09-21T14:13:21.000Z"
    code, jsonl, _ = run(capsys, "--db", db.url, "chats", "export", db.lisbon, "--format", "jsonl")
    rows = [json.loads(line) for line in jsonl.splitlines()]
    assert [r["type"] for r in rows] == ["chat", "message", "message", "message"]
    assert [r.get("content") for r in rows[1:]] == [m["content"] for m in doc["messages"]]
    target = tmp_path / "out.md"
    assert run(capsys, "--db", db.url, "chats", "export", db.lisbon, "-o", str(target))[0] == 0
    assert target.read_text(encoding="utf-8") == md


def test_chats_search_finds_messages_by_owner(
    db: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    every = run_json(capsys, db, "chats", "search", "lisbon")
    assert isinstance(every, dict) and {h["owner"] for h in every["hits"]} == {"alice", "bob"}
    alices = run_json(capsys, db, "chats", "search", "lisbon", "--owner", "alice")
    assert isinstance(alices, dict)
    assert [(h["chat_id"], h["seq"]) for h in alices["hits"]] == [(db.lisbon, 1)]
    code, out, _ = run(capsys, "--db", db.url, "chats", "search", "madrid")
    assert (code, out) == (0, "no matches\n")


def test_chats_rename_delete_and_prune_change_the_store(
    db: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    renamed = run_json(capsys, db, "chats", "rename", db.porto, "Weather in Porto")
    assert isinstance(renamed, dict) and renamed["chat"]["title"] == "Weather in Porto"
    assert run_json(capsys, db, "chats", "delete", db.bobs) == {"deleted": db.bobs}
    pruned = run_json(capsys, db, "chats", "prune", "--older-than", "30d")
    assert isinstance(pruned, dict) and pruned["deleted"] == 1  # the closed Lisbon chat

    async def remaining() -> list[str]:
        store = await open_store(db.url)
        page = await store.list_chats(owner=ANY_OWNER)
        await store.aclose()
        return [c.id for c in page.chats]

    assert asyncio.run(remaining()) == [db.porto]


def test_db_check_stats_and_backup(
    db: Seeded, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run_json(capsys, db, "db", "check") == {"ok": True, "problems": []}
    stats = run_json(capsys, db, "db", "stats")
    assert isinstance(stats, dict)
    assert (stats["chats"], stats["messages"], stats["owners"]) == (3, 5, 2)
    assert stats["chats_by_status"] == {"active": 2, "closed": 1}
    assert stats["schema_version"] == LATEST
    target = tmp_path / "copy.db"
    backup = run_json(capsys, db, "db", "backup", str(target))
    assert isinstance(backup, dict) and backup["bytes"] == target.stat().st_size > 0
    copy = Seeded(f"sqlite:///{target}", db.lisbon, db.porto, db.bobs)
    assert run_json(capsys, copy, "db", "stats")["messages"] == 5  # type: ignore[index]
    code, _, err = run(capsys, "--db", db.url, "db", "backup", str(target))
    assert code == 1 and err == f"voxkeepctl: {target} already exists\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["chats", "show", "chat_nope"], "voxkeepctl: no such chat: chat_nope\n"),
        (
            ["chats", "export", "chat_nope", "--format", "json"],
            "voxkeepctl: no such chat: chat_nope\n",
        ),
        (["chats", "rename", "chat_nope", "x"], "voxkeepctl: no such chat: chat_nope\n"),
        (["chats", "delete", "chat_nope"], "voxkeepctl: no such chat: chat_nope\n"),
        (
            ["chats", "prune", "--older-than", "soon"],
            "voxkeepctl: not a duration: 'soon' (use e.g. 90d, 12h, 30m)\n",
        ),
        (["chats", "list", "--limit", "0"], "voxkeepctl: --limit must be between 1 and 1000\n"),
        (
            ["chats", "list", "--cursor", "bogus"],
            "voxkeepctl: cursor is not one this store gave out\n",
        ),
        (["chats", "search", "?!"], "voxkeepctl: a search needs at least one word\n"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_1(
    db: Seeded, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert run(capsys, "--db", db.url, *argv) == (1, "", message)


def test_a_rename_to_a_bad_title_changes_nothing(
    db: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "--db", db.url, "chats", "rename", db.porto, "x" * 101)
    assert (code, err) == (1, "voxkeepctl: a title has 1 to 100 characters\n")
    shown = run_json(capsys, db, "chats", "show", db.porto)
    assert shown["chat"]["title"] == "What's the weather in Porto?"  # type: ignore[index]


def test_the_console_script_reports_usage_errors_with_exit_code_2(db: Seeded) -> None:
    done = subprocess.run(
        [VOXKEEPCTL, "chats", "frobnicate"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("voxkeepctl chats: usage error:")


def test_the_console_script_reports_bad_settings_in_one_line(db: Seeded) -> None:
    bad_url = subprocess.run(
        [VOXKEEPCTL, "--db", "mysql://x", "chats", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (bad_url.returncode, bad_url.stderr) == (
        1,
        "voxkeepctl: VOXKEEP_DB_URL must start with sqlite:/// or postgresql://\n",
    )
    bad_env = subprocess.run(
        [VOXKEEPCTL, "--db", db.url, "chats", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "VOXKEEP_LOG_LEVEL": "LOUD"},
    )
    assert bad_env.returncode == 1 and bad_env.stderr.startswith("voxkeepctl: VOXKEEP_LOG_LEVEL: ")
    assert bad_env.stderr.count("\n") == 1
    ok = subprocess.run(
        [VOXKEEPCTL, "--json", "--db", db.url, "chats", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0 and len(json.loads(ok.stdout)["chats"]) == 3


def test_chats_delete_owner_all_erases_a_person_and_nobody_else(
    db: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--db", db.url, "chats", "delete", "--owner", "alice", "--all")
    assert (code, out, err) == (0, "erased alice: deleted 2 chats\n", "")
    assert run_json(capsys, db, "chats", "delete", "--owner", "alice", "--all") == {
        "owner": "alice", "deleted": 0,
    }  # fmt: skip
    listed = run_json(capsys, db, "chats", "list")
    assert isinstance(listed, dict)
    assert [c["id"] for c in listed["chats"]] == [db.bobs]


@pytest.mark.parametrize(
    "argv",
    [["--owner", "alice"], ["--all"], ["--owner", "alice", "--all", "chat_x"], []],
)
def test_chats_delete_refuses_a_half_given_erasure_in_one_line(
    db: Seeded, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, err = run(capsys, "--db", db.url, "chats", "delete", *argv)
    assert (code, out) == (1, "") and err.count("\n") == 1 and err.startswith("voxkeepctl: ")
    listed = run_json(capsys, db, "chats", "list")
    assert isinstance(listed, dict) and len(listed["chats"]) == 3


def listed_ids(capsys: pytest.CaptureFixture[str], db: Seeded) -> set[str]:
    listed = run_json(capsys, db, "chats", "list")
    assert isinstance(listed, dict)
    return {c["id"] for c in listed["chats"]}


def test_destructive_commands_take_a_dry_run_that_names_what_would_go_and_keeps_it(
    db: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    every = {db.lisbon, db.porto, db.bobs}
    erase = run_json(capsys, db, "chats", "delete", "--owner", "alice", "--all", "--dry-run")
    assert isinstance(erase, dict) and erase["dry_run"] is True
    assert {c["id"] for c in erase["would_delete"]} == {db.lisbon, db.porto}
    one = run_json(capsys, db, "chats", "delete", db.bobs, "--dry-run")
    assert [c["id"] for c in one["would_delete"]] == [db.bobs]  # type: ignore[index]
    pruned = run_json(capsys, db, "chats", "prune", "--older-than", "30d", "--dry-run")
    assert [c["id"] for c in pruned["would_delete"]] == [db.lisbon]  # type: ignore[index]
    code, out, _ = run(capsys, "--db", db.url, "chats", "prune", "--older-than", "30d", "--dry-run")
    assert code == 0 and out.startswith("would delete 1 chat (a dry run: nothing was deleted)\n")
    assert db.lisbon in out  # and the table of what
    assert listed_ids(capsys, db) == every  # nothing went
    code, _, err = run(capsys, "--db", db.url, "chats", "delete", "chat_nope", "--dry-run")
    assert (code, err) == (1, "voxkeepctl: no such chat: chat_nope\n")
    # and the real run deletes exactly what the dry run named
    assert run_json(capsys, db, "chats", "prune", "--older-than", "30d")["deleted"] == 1  # type: ignore[index]
    assert listed_ids(capsys, db) == every - {db.lisbon}


def test_chats_export_to_a_path_it_cannot_write_is_one_line(
    db: Seeded, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "missing" / "dir" / "f.md"
    code, out, err = run(capsys, "--db", db.url, "chats", "export", db.lisbon, "-o", str(target))
    assert (code, out) == (1, "")
    assert err == f"voxkeepctl: cannot write {target}: No such file or directory\n"


@pytest.mark.parametrize("shell", ["bash", "zsh", "tcsh"])
def test_completion_scripts_are_offered_for_each_shell(
    shell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "completion", shell)
    assert (code, err) == (0, "")
    assert "voxkeepctl" in out and "chats" in out and out.endswith("\n")


def test_bash_completes_commands_and_options_from_the_script(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "completion", "bash")
    assert code == 0
    script = tmp_path / "voxkeepctl.bash"
    script.write_text(out)

    def complete(*words: str) -> set[str]:
        line = " ".join(("voxkeepctl", *words))
        probe = (
            f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words)}; "
            f"COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; "
            "_shtab_voxkeepctl; printf '%s\\n' \"${COMPREPLY[@]}\""
        )
        done = subprocess.run(
            ["bash", "-c", probe], capture_output=True, text=True, timeout=30, check=True
        )
        return {word.strip() for word in done.stdout.split()}

    assert "chats" in complete("ch")
    assert {"prune", "delete"} <= complete("chats", "")
    assert "--dry-run" in complete("chats", "prune", "--d")


async def leave_a_dead_call(url: str) -> str:
    """carol's chat, with something said, held by a call that stopped an hour ago."""
    store = await open_store(url)
    long_ago = time.time() - 3600
    left = chat("carol", at=long_ago)
    dead = NewCall(id=new_call_id(), chat_id=left.id, participant="carol", started_at=long_ago)
    await store.write([left, dead, msg(left.id, "Hello?", at=long_ago)])
    await store.aclose()
    return left.id


def test_voxkeepctl_background_sweeps_without_a_worker_and_stops_on_sigterm(db: Seeded) -> None:
    async def status(chat_id: str) -> str:
        store = await open_store(db.url)
        try:
            return (await store.get_chat(chat_id, owner=ANY_OWNER)).status
        finally:
            await store.aclose()

    left = asyncio.run(leave_a_dead_call(db.url))
    with subprocess.Popen(
        [VOXKEEPCTL, "--db", db.url, "background"], stderr=subprocess.DEVNULL
    ) as running:
        try:
            deadline = time.monotonic() + 60
            while asyncio.run(status(left)) == "active":
                assert running.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        finally:
            running.send_signal(signal.SIGTERM)
        assert running.wait(timeout=30) == 0
    assert asyncio.run(status(left)) == "interrupted"


def test_sweep_dry_run_counts_what_the_sweep_then_does(
    db: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(leave_a_dead_call(db.url))
    tried = run_json(capsys, db, "sweep", "--dry-run")
    assert tried == {"dry_run": True, "calls_lost": 1, "chats_lost": 1, "chats_deleted": 0,
                     "chats_waiting": 0, "retention_deleted": 0, "events_expired": 0,
                     "purges": 0}  # fmt: skip
    assert run_json(capsys, db, "sweep", "--dry-run") == tried  # nothing changed
    code, out, _ = run(capsys, "--json", "--db", db.url, "sweep")  # (it logs what it did)
    assert code == 0
    assert json.loads(out) == {k: v for k, v in tried.items() if k != "dry_run"}
