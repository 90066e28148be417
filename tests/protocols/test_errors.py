"""The exception trees drawn in the docstrings are the code's: each drawn class exists with the
drawn parent among its bases, and every exception class of the module is drawn. One tree for the
framework (``protocols.errors``), one small tree per system under ``PtrError``."""

from __future__ import annotations

import importlib
import re

import pytest

from protocols import errors

DRAWN = re.compile(r"^(?P<indent>[ │]*)(?:[├└]── )?(?P<name>[A-Z][A-Za-z]*(?:Error|Exception))\b")


def drawn_tree(doc: str) -> dict[str, str | None]:
    """``{class name: drawn parent}`` from a box-drawing tree in a docstring."""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in doc.splitlines():
        line = line[4:] if line.startswith("    ") else line
        match = DRAWN.match(line)
        if match is None or not line.lstrip(" │").startswith(("├──", "└──", match["name"])):
            continue
        depth = len(match["indent"]) // 4 if ("├──" in line or "└──" in line) else -1
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[match["name"]] = stack[-1][1] if stack else None
        stack.append((depth, match["name"]))
    return parents


def defined_exceptions(module: object) -> set[str]:
    return {name for name, value in vars(module).items()
            if isinstance(value, type) and issubclass(value, BaseException)
            and value.__module__ == getattr(module, "__name__")}


@pytest.mark.parametrize("module_name", ["protocols.errors", "protocols.game",
                                         "protocols.smart_home"])
def test_the_drawn_tree_is_the_code(module_name: str) -> None:
    module = importlib.import_module(module_name)
    tree = drawn_tree(module.__doc__ or "")
    assert tree, f"{module_name} draws no tree"
    for name, parent in tree.items():
        cls = getattr(module, name, None) or getattr(errors, name)
        if parent is None:
            assert name == "PtrError"
            continue
        bases = {base.__name__ for base in cls.__mro__[1:]}
        assert parent in bases, f"{name} is drawn under {parent}, but its bases are {bases}"
    assert defined_exceptions(module) <= set(tree), \
        f"{module_name} defines exceptions it does not draw: {defined_exceptions(module) - set(tree)}"


def test_every_framework_exception_is_a_ptr_error() -> None:
    for name in defined_exceptions(errors):
        assert issubclass(getattr(errors, name), errors.PtrError), name
