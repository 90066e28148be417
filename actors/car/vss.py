"""The car's signal catalogue: a small loader of COVESA VSS's YAML ("vspec") format, and the sensors
deployed on the car's LAN.

Why not ``vss-tools``: it is a compiler (vspec -> JSON, CSV, protobuf...) with its own dependency
tree, and the holder needs only each signal's name, type, datatype, unit, range and two extended
attributes. This loader reads the *flat* vspec layout (one YAML entry per dotted name, as
``vss-tools`` exports it and as the spec files list it once ``#include`` is resolved) and
understands: ``type`` (branch, sensor, actuator, attribute), ``datatype`` (VSS's integer widths,
float, double, boolean), ``unit``, ``min``, ``max``, ``description``, and the extended attributes
``period_ms`` (expected period, default 10) and ``tolerance`` (plausibility, redundant sensors).
Anything else raises ``VssError`` naming the entry: a typo in the catalogue is found at start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from protocols.errors import ConfigError

__all__ = ["DEFAULT_VSPEC", "SensorSpec", "SignalSpec", "VssError", "default_sensors",
           "load_vspec", "parse_vspec", "synthetic_specs"]

NODE_TYPES = frozenset({"branch", "sensor", "actuator", "attribute"})
INTEGER_RANGES = {"uint8": (0, 255), "int8": (-128, 127), "uint16": (0, 65535),
                  "int16": (-32768, 32767), "uint32": (0, 2**32 - 1),
                  "int32": (-2**31, 2**31 - 1), "uint64": (0, 2**64 - 1),
                  "int64": (-2**63, 2**63 - 1)}
DATATYPES = frozenset({*INTEGER_RANGES, "float", "double", "boolean"})
KNOWN_KEYS = frozenset({"type", "datatype", "unit", "min", "max", "description", "period_ms",
                        "tolerance", "comment"})
DEFAULT_PERIOD_MS = 10.0


class VssError(ConfigError):
    """The vspec file is not the VSS subset this loader reads; the text names the entry."""


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """One leaf of the tree (sensor, actuator or attribute)."""

    path: str
    type: str
    datatype: str
    unit: str = ""
    min: float | None = None
    max: float | None = None
    period_s: float = DEFAULT_PERIOD_MS / 1000
    tolerance: float | None = None
    description: str = ""

    @property
    def settable(self) -> bool:
        return self.type == "actuator"

    def check(self, value: Any) -> str:
        """'' when ``value`` fits the datatype and range, else why not."""
        if self.datatype == "boolean":
            return "" if type(value) is bool else f"{self.path} is boolean"
        if type(value) is bool or type(value) not in (int, float):
            return f"{self.path} takes a number"
        if self.datatype in INTEGER_RANGES:
            if type(value) is float and not value.is_integer():
                return f"{self.path} is {self.datatype}: {value} is not an integer"
            low, high = INTEGER_RANGES[self.datatype]
            if not low <= value <= high:
                return f"{self.path} is {self.datatype}: {value} is out of its range"
        elif math.isnan(value):
            return f"{self.path}: NaN is not a value"
        if self.min is not None and value < self.min:
            return f"{self.path}: {value} is below its min {self.min}"
        if self.max is not None and value > self.max:
            return f"{self.path}: {value} is above its max {self.max}"
        return ""


@dataclass(frozen=True, slots=True)
class SensorSpec:
    """A sensor on the LAN: its id (in every datagram), the signal it measures, its strength
    (the strongest live sensor of a signal owns its value)."""

    sensor_id: int
    path: str
    strength: int


DEFAULT_VSPEC = "car.vspec"


def load_vspec(path: str | Path | None = None) -> list[SignalSpec]:
    """The signals of a vspec file; the one shipped with the package by default."""
    if path is None:
        text = resources.files("actors.car").joinpath(DEFAULT_VSPEC).read_text()
        where = DEFAULT_VSPEC
    else:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise VssError(f"vspec file {path} cannot be read: {exc}") from None
        where = str(path)
    return parse_vspec(text, where)


def parse_vspec(text: str, where: str = "vspec") -> list[SignalSpec]:
    try:
        entries = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise VssError(f"{where} is not YAML: {exc}") from None
    if not isinstance(entries, dict) or not entries:
        raise VssError(f"{where}: a vspec is a map of dotted names to their attributes")
    branches: set[str] = set()
    signals: list[SignalSpec] = []
    for name, attrs in entries.items():
        if not isinstance(name, str) or not isinstance(attrs, dict):
            raise VssError(f"{where}: entry {name!r} is not a name with attributes")
        unknown = set(attrs) - KNOWN_KEYS
        if unknown:
            raise VssError(f"{where}: {name} has attributes this loader does not read: "
                           f"{sorted(unknown)}")
        node_type = attrs.get("type")
        if node_type not in NODE_TYPES:
            raise VssError(f"{where}: {name} has type {node_type!r}; one of {sorted(NODE_TYPES)}")
        parent = name.rpartition(".")[0]
        if parent and parent not in branches:
            raise VssError(f"{where}: {name} comes before (or without) its branch {parent}")
        if node_type == "branch":
            branches.add(name)
            continue
        datatype = attrs.get("datatype")
        if datatype not in DATATYPES:
            raise VssError(f"{where}: {name} has datatype {datatype!r}")
        period_ms = attrs.get("period_ms", DEFAULT_PERIOD_MS)
        if not isinstance(period_ms, (int, float)) or period_ms <= 0:
            raise VssError(f"{where}: {name} has period_ms {period_ms!r}; a positive number")
        signals.append(SignalSpec(
            path=name, type=node_type, datatype=datatype, unit=str(attrs.get("unit", "")),
            min=_number(attrs, "min", name, where), max=_number(attrs, "max", name, where),
            period_s=float(period_ms) / 1000, tolerance=_number(attrs, "tolerance", name, where),
            description=str(attrs.get("description", ""))))
    return signals


def _number(attrs: dict[str, Any], key: str, name: str, where: str) -> float | None:
    value = attrs.get(key)
    if value is not None and (type(value) is bool or not isinstance(value, (int, float))):
        raise VssError(f"{where}: {name} has {key} {value!r}; a number")
    return value


def default_sensors(signals: list[SignalSpec], redundancy: int = 2,
                    first_id: int = 1) -> list[SensorSpec]:
    """The deployment: ``redundancy`` sensors per sensor signal, in file order, ids counting from
    ``first_id``; the first of each signal is the strongest (strength ``redundancy``, then down
    to 1). Actuators are set by clients, not fed by sensors."""
    out: list[SensorSpec] = []
    next_id = first_id
    for spec in signals:
        if spec.type != "sensor":
            continue
        for rank in range(redundancy):
            out.append(SensorSpec(next_id, spec.path, redundancy - rank))
            next_id += 1
    return out


def synthetic_specs(count: int, period_ms: float = DEFAULT_PERIOD_MS) -> list[SignalSpec]:
    """``count`` extra float sensors ``Vehicle.Diagnostics.ChannelN`` (range 0-1000, tolerance 50),
    for a benchmark that needs more signals than the car has."""
    return [SignalSpec(path=f"Vehicle.Diagnostics.Channel{n}", type="sensor", datatype="float",
                       min=0.0, max=1000.0, period_s=period_ms / 1000, tolerance=50.0)
            for n in range(1, count + 1)]
