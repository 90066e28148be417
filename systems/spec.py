"""A system definition: one declarative object per scenario that builds the whole tree.

A ``SystemSpec`` names a system, its settings (a pydantic model that a TOML file and ``--set``
flags override), and how to build its supervision tree from those settings. Building validates the
tree (``SpecError`` names the offending child) and checks placement against the nodes it may run on.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from protocols.errors import ConfigError, PtrError, SpecError
from supervisors.spec import ChildSpec, SupervisorSpec


class SystemSettings(BaseModel):
    """Settings every system has; a system subclasses it with its own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    data_dir: str = "var"
    """the directory of the system's files (SQLite databases, TLS pair)"""
    storage_url: str = ""
    """the database: empty for SQLite under data_dir, or postgresql://..."""

    def resolved_storage_url(self, system: str) -> str:
        return self.storage_url or f"sqlite:///{Path(self.data_dir) / (system + '.db')}"


@dataclass(frozen=True)
class SystemSpec:
    name: str
    summary: str
    build_tree: Callable[[Any], SupervisorSpec]
    settings_model: type[SystemSettings] = SystemSettings
    status: Callable[[Any, Any], str] | None = None   # (runtime, settings) -> one status line
    edges: Callable[[Any], list[str]] | None = None    # settings -> where edges listen
    simulator: Callable[..., Any] | None = None
    listen_ports: Callable[[Any], dict[str, int]] | None = None  # settings -> {setting: port}
    node_capabilities: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)
    # runtime -> {label: value}: what ``ptr inspect`` shows under the tree (the system's own
    # figures, read without side effects; the running system's settings are not known there)
    inspect_extra: Callable[[Any], dict[str, Any]] | None = None
    # (runtime, settings) -> the system's own Prometheus families (prometheus_client Metric
    # objects), asked once per observer snapshot from the thread that owns the runtime
    metrics: Callable[[Any, Any], Iterable[Any]] | None = None
    command: Callable[[list[str]], int] | None = None  # ``ptr NAME ARGS...``: the system's own CLI

    def settings(self, config_file: Path | None = None,
                 overrides: Mapping[str, Any] | None = None) -> SystemSettings:
        """Defaults, then the TOML file's ``[NAME]`` table (or top level), then ``--set`` flags."""
        values: dict[str, Any] = {}
        if config_file is not None:
            try:
                data = tomllib.loads(Path(config_file).read_text())
            except FileNotFoundError:
                raise ConfigError(f"config file not found: {config_file}") from None
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from None
            values.update(data.get(self.name, data))
        values.update(overrides or {})
        try:
            return self.settings_model(**values)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            given = f" = {json.dumps(first['input'], default=str)}" \
                if first["type"] != "missing" and len(first["loc"]) == 1 else ""
            raise ConfigError(f"invalid setting {where!r}{given} for {self.name}: {first['msg']} "
                              f"(the settings: ptr run {self.name} --help)") from None

    def tree(self, settings: SystemSettings | None = None,
             nodes: Iterable[Mapping[str, Any]] | None = None) -> SupervisorSpec:
        """Build and validate the tree; with ``nodes``, every child must be placeable on one."""
        tree = self.build_tree(settings or self.settings())
        check_placement(tree, list(nodes) if nodes is not None else None)
        return tree


def walk(tree: SupervisorSpec, prefix: str = "") -> Iterable[tuple[str, ChildSpec]]:
    for child in tree.children:
        path = f"{prefix}/{child.id}"
        yield path, child
        if child.is_supervisor:
            assert child.supervises is not None
            yield from walk(child.supervises, path)


def check_placement(tree: SupervisorSpec, nodes: list[Mapping[str, Any]] | None) -> None:
    """A child whose requirements no node meets can never start: refuse the spec now."""
    if nodes is None:
        return
    for path, child in walk(tree):
        needs = dict(child.requirements or {})
        if needs and not any(all(node.get(k) == v for k, v in needs.items()) for node in nodes):
            raise SpecError(f"no node has capabilities {needs} (placement impossible)",
                            child_id=path)


def settings_help(model: type[SystemSettings]) -> list[str]:
    """One line per ``--set`` key: its type, default, range and meaning, from the settings model.
    The meaning is the field's description (an attribute docstring), or else the sentence of the
    model's docstring that names it (````key````)."""
    doc = " ".join((model.__doc__ or "").split())
    lines = []
    for key, info in model.model_fields.items():
        kind = getattr(info.annotation, "__name__", None) or str(info.annotation)
        kind = kind.replace("typing.", "")
        default = info.get_default(call_default_factory=False)
        shown = "(built in)" if info.default_factory is not None else json.dumps(default,
                                                                                  default=str)
        bounds = [f"{word} {getattr(m, attr)}" for m in info.metadata
                  for attr, word in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))
                  if getattr(m, attr, None) is not None]
        meaning = info.description or _sentence_naming(doc, key)
        lines.append(f"  {key + '=' + kind:<32} default {shown}"
                     + (f", {' '.join(bounds)}" if bounds else "")
                     + (f": {meaning}" if meaning else ""))
    return lines


def _sentence_naming(doc: str, key: str) -> str:
    at = doc.find(f"``{key}``")
    if at < 0:
        return ""
    start = max(doc.rfind(". ", 0, at) + 2, 0) if doc.rfind(". ", 0, at) >= 0 else 0
    end = doc.find(". ", at)
    sentence = doc[start:end + 1 if end >= 0 else len(doc)].replace("``", "")
    return sentence if len(sentence) <= 160 else sentence[:159] + "…"


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (``--set``, ``--capability``) as settings: a value is JSON if it
    parses as JSON, else the string."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PtrError(f"--set takes KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out
