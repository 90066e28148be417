"""The project's shape: its packages import from this repo, and imports flow one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["protocols", "actors", "supervisors", "systems"]


def test_top_level_packages_are_this_repos_not_pypis_namesakes() -> None:
    import actors
    import protocols
    import supervisors
    import systems
    for package in (actors, systems, supervisors, protocols):
        assert Path(package.__file__).resolve().parent.parent == ROOT, package.__file__
        assert package.__all__


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_flow_from_protocols_to_systems_only(layer: str) -> None:
    forbidden = set(LAYERS[LAYERS.index(layer) + 1:])
    for path in (ROOT / layer).rglob("*.py"):
        bad = _imports(path) & forbidden
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}, a higher layer"


def test_protocols_are_pure_data_without_thespian() -> None:
    for path in (ROOT / "protocols").rglob("*.py"):
        assert "thespian" not in _imports(path), path


def test_only_the_runtime_talks_to_actorsystem() -> None:
    users = [p.relative_to(ROOT).as_posix() for layer in LAYERS for p in (ROOT / layer).rglob("*.py")
             if "ActorSystem(" in p.read_text()]
    assert users == ["systems/runtime.py"]
