"""docs/architecture.md draws the rooms the code has, in the layers `lint-imports` checks: the
diagram, the contract in pyproject.toml and the package's folders agree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE = re.compile(r'^\s*(\w+)\["(\w+)/ ')
SUBGRAPH = re.compile(r"^\s*subgraph (\w+)")


def drawn_layers() -> list[set[str]]:
    """The first diagram's chain of rooms, top to bottom, each a set of folders."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    diagram = page.split("```mermaid\n", 1)[1].split("```", 1)[0]
    folder: dict[str, str] = {}
    members: dict[str, set[str]] = {}
    group: str | None = None
    chain: list[str] = []
    for line in diagram.splitlines():
        if found := SUBGRAPH.match(line):
            group = found[1]
            members[group] = set()
        elif line.strip() == "end":
            group = None
        elif found := NODE.match(line):
            folder[found[1]] = found[2]
            if group is not None:
                members[group].add(found[2])
        elif "-->" in line:
            chain = [name.strip() for name in line.split("-->")]
    return [members.get(name) or {folder[name]} for name in chain]


def contract_layers() -> list[set[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (rooms,) = [c for c in config["contracts"] if c["id"] == "rooms"]
    return [
        {module.strip().removeprefix("voxkeep.") for module in re.split(r"[|:]", layer)}
        for layer in rooms["layers"]
    ]


def test_the_diagram_draws_the_layers_the_contract_checks() -> None:
    assert drawn_layers() == contract_layers()


def test_every_folder_of_the_package_is_a_room_of_the_diagram() -> None:
    folders = {p.name for p in (ROOT / "voxkeep").iterdir() if (p / "__init__.py").exists()}
    assert folders == set().union(*drawn_layers())
