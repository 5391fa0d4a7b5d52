"""What the code and the README cite is in the repository: every `docs/…md` they name exists,
every link between the docs resolves, and nothing points outside."""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

from voxkeep.cli.main import build_parser
from voxkeep.prosody import dsp

ROOT = Path(__file__).resolve().parent.parent
CITED = re.compile(r"docs/([a-z_]+\.md)")
LINK = re.compile(r"\]\(([^)#:]+\.md)(?:#([a-z0-9-]+))?\)")
BINARY = {".png", ".wav", ".onnx"}
OUTSIDE = re.compile(r"\.\./shared|DESIGN\.md|DESIGN §|LIVEKIT_NOTES|PROSODY_NOTES|STYLE\.md")


def tracked(*paths: str) -> list[Path]:
    names = subprocess.run(
        ["git", "ls-files", *paths], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [ROOT / name for name in names if (ROOT / name).is_file()]


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", page.read_text(), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_every_cited_doc_exists_and_nothing_points_outside_the_repository() -> None:
    sources = [s for s in tracked() if s.suffix not in BINARY and s != Path(__file__)]
    assert len(sources) > 100
    for source in sources:
        text = source.read_text(errors="replace")
        for page in CITED.findall(text):
            assert (ROOT / "docs" / page).is_file(), f"{source.name} cites docs/{page}"
        assert not OUTSIDE.search(text), f"{source.relative_to(ROOT)} points outside"


def test_links_between_the_docs_resolve() -> None:
    pages = [*(p for p in tracked("docs") if p.suffix == ".md"), ROOT / "README.md"]
    for page in pages:
        for target, anchor in LINK.findall(page.read_text()):
            linked = (page.parent / target).resolve()
            assert linked.is_file(), f"{page.name} links {target}"
            if anchor:
                assert anchor in anchors(linked), f"{page.name} links {target}#{anchor}"


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every leaf command of `voxkeepctl`, e.g. ("chats", "prune")."""
    found: set[tuple[str, ...]] = set()
    for name, sub in subcommands(parser).items():
        found |= commands(sub, (*prefix, name)) or {(*prefix, name)}
    return found


def test_the_operations_page_lists_every_voxkeepctl_command_and_only_those() -> None:
    page = (ROOT / "docs" / "operations.md").read_text()
    section = page.split("## `voxkeepctl`", 1)[1].split("\n## ", 1)[0]
    documented: set[tuple[str, ...]] = set()
    for line in section.replace("\\|", "/").splitlines():
        if not line.startswith("| `"):
            continue
        for span in re.findall(r"`([^`]+)`", line.split("|")[1]):
            words = []
            for word in span.split():
                if not re.fullmatch(r"[a-z][a-z-]*", word):
                    break
                words.append(word)
            documented.add(tuple(words))
    actual = commands(build_parser())
    assert actual - documented == set(), "commands docs/operations.md does not list"
    assert documented - actual == set(), "docs/operations.md lists commands that do not exist"


def test_every_deleting_command_takes_a_dry_run() -> None:
    parser = build_parser()
    for path in [("chats", "delete"), ("chats", "prune"), ("dispatch", "delete"), ("sweep",)]:
        command = parser
        for name in path:
            command = subcommands(command)[name]
        assert "--dry-run" in command._option_string_actions, " ".join(path)


def test_the_prosody_page_states_the_rate_the_analyzer_runs_at() -> None:
    page = (ROOT / "docs" / "prosody.md").read_text()
    assert f"at {dsp.RATE // 1000} kHz" in page
