"""What the code and the README cite is in the repository: every `docs/…md` they name exists,
every link between the docs resolves, and nothing points outside."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

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
