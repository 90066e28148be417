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


# --- a system is one name in every layer --------------------------------------------------------

def _system_names() -> dict[str, str]:
    """Catalog name -> module name (``smart-home`` -> ``smart_home``)."""
    from systems import catalog
    return {name: name.replace("-", "_") for name in catalog.systems()}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _owner(module: str, systems: set[str]) -> str | None:
    """The system a module belongs to (``actors.game.lobby`` -> ``game``), or None: framework."""
    parts = module.split(".")
    if parts[0] in LAYERS and len(parts) > 1:
        if parts[1] in systems:
            return parts[1]
        if parts[:2] == ["systems", "bench"] and len(parts) > 2 and parts[2] in systems:
            return parts[2]
    if parts[0] == "tests" and len(parts) > 1 and parts[1] in systems:
        return parts[1]
    return None


def _python_files() -> list[Path]:
    return [p for top in [*LAYERS, "tests"] for p in (ROOT / top).rglob("*.py")]


@pytest.mark.parametrize("name", sorted(_system_names()))
def test_every_system_has_its_entry_in_each_layer(name: str) -> None:
    module = _system_names()[name]
    assert (ROOT / "protocols" / f"{module}.py").is_file() or \
        (ROOT / "protocols" / module / "__init__.py").is_file()
    assert (ROOT / "actors" / module / "__init__.py").is_file(), "actors/X/ is a package"
    assert (ROOT / "systems" / f"{module}.py").is_file()
    assert (ROOT / "tests" / module).is_dir()
    assert (ROOT / "docs" / "systems" / f"{name}.md").is_file()
    from systems.bench.registry import BENCHMARKS
    if name in BENCHMARKS:
        assert (ROOT / "systems" / "bench" / module / "__init__.py").is_file()


def test_the_framework_imports_no_system() -> None:
    """Only the catalogs of systems and of benchmarks name them (lazily, by name)."""
    systems = set(_system_names().values())
    catalogs = {"systems.catalog", "systems.bench.registry"}
    for path in _python_files():
        module = _module_name(path)
        if _owner(module, systems) is not None or module in catalogs or module.startswith("tests"):
            continue
        used = {_owner(m, systems) for m in _imported_modules(path)} - {None}
        assert not used, f"{module} (framework) imports the system {sorted(used)}"


def test_no_system_imports_another() -> None:
    systems = set(_system_names().values())
    for path in _python_files():
        mine = _owner(_module_name(path), systems)
        if mine is None:
            continue
        others = {_owner(m, systems) for m in _imported_modules(path)} - {None, mine}
        assert not others, f"{_module_name(path)} ({mine}) imports {sorted(others)}"


def test_no_module_imports_another_packages_private_module() -> None:
    """``a.b._x`` is private to the package ``a.b``: imported from inside it only."""
    for path in _python_files():
        importer = _module_name(path)
        for module in _imported_modules(path):
            parts = module.split(".")
            private = [i for i, part in enumerate(parts) if part.startswith("_")
                       and not part.startswith("__")]
            if not private or parts[0] not in [*LAYERS, "tests"]:
                continue
            package = ".".join(parts[:private[0]])
            assert importer == package or importer.startswith(package + "."), \
                f"{importer} imports {module}, private to {package}"


def test_only_one_module_imports_thespian() -> None:
    users = sorted(_module_name(p) for p in _python_files()
                   if any(m == "thespian" or m.startswith("thespian.") for m in _imported_modules(p)))
    assert users == ["actors._thespian"]


def test_every_package_states_its_public_names_and_how_to_read_it() -> None:
    import importlib
    for init in sorted(p for top in LAYERS for p in (ROOT / top).rglob("__init__.py")):
        module = importlib.import_module(_module_name(init))
        names = getattr(module, "__all__", None)
        assert names, f"{_module_name(init)} has no __all__"
        missing = [n for n in names if not hasattr(module, n)]
        assert not missing, f"{_module_name(init)}.__all__ names what it lacks: {missing}"
        assert module.__doc__ and len(module.__doc__.strip().splitlines()) >= 2, \
            f"{_module_name(init)} opens without two lines on how to read it"


def test_no_test_module_imports_another_test_module() -> None:
    """What tests share (fixtures, clients, rigs) lives in ``tests/support/``, not in a test file."""
    offenders = sorted(
        f"{_module_name(p)} -> {m}" for p in (ROOT / "tests").rglob("test_*.py")
        for m in _imported_modules(p) if m.startswith("tests.") and
        m.split(".")[-1].startswith("test_") and m.count(".") >= 2 and "support" not in m)
    assert offenders == []
