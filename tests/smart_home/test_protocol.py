"""The smart home's wire shapes: one JSON shape per sensor kind, strict types, and a house that
cannot be described wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from protocols.codec import field_errors
from protocols.smart_home import (
    KINDS,
    METRICS,
    HouseConfig,
    ReadingBody,
    default_house,
    generated_house,
)

BODY = TypeAdapter(ReadingBody)
BATCH = TypeAdapter(list[ReadingBody])


def _floats(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)


IDS = st.from_regex(r"[A-Za-z0-9_.:-]{1,40}", fullmatch=True)
COMMON = {"message_id": IDS, "sensor_id": IDS, "ts": _floats(0, 4e9)}
SHAPES: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "heating": {"temperature": _floats(-50, 100), "setpoint": _floats(0, 40),
                "valve": _floats(0, 100)},
    "meteo": {"temperature": _floats(-60, 60), "humidity": _floats(0, 100),
              "pressure": _floats(850, 1100), "wind": _floats(0, 100), "rain": _floats(0, 500)},
    "motion": {"motion": st.booleans()},
    "electricity": {"power": _floats(0, 100_000), "energy": _floats(0, 1e12)},
}


def readings_of(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"kind": st.just(kind), **COMMON, **SHAPES[kind]})


@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_every_kind_round_trips_through_its_json_shape(kind: str, data: st.DataObject) -> None:
    raw = data.draw(readings_of(kind))
    parsed = BODY.validate_json(json.dumps(raw)).root
    assert parsed.kind == kind and type(parsed).__name__.lower().startswith(kind)
    assert BODY.validate_json(parsed.model_dump_json()).root == parsed
    assert set(METRICS[kind]) <= set(parsed.model_dump())


def errors_of(raw: Any, adapter: TypeAdapter[Any] = BODY) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        adapter.validate_json(json.dumps(raw))
    return [(e["field"], e["error"]) for e in field_errors(caught.value)]


def valid(kind: str) -> dict[str, Any]:
    values = {"heating": {"temperature": 20.0, "setpoint": 21.0, "valve": 30.0},
              "meteo": {"temperature": 5.0, "humidity": 80.0, "pressure": 1010.0, "wind": 2.0,
                        "rain": 0.0},
              "motion": {"motion": False},
              "electricity": {"power": 100.0, "energy": 5.0}}[kind]
    return {"kind": kind, "message_id": "m-1", "sensor_id": "s-1", "ts": 1.7e9, **values}


@pytest.mark.parametrize("kind, field, bad", [
    ("heating", "temperature", "21.5"),      # a number in a string is not a number
    ("meteo", "humidity", None),
    ("motion", "motion", 1),                 # 1 is not a boolean
    ("electricity", "power", "lots"),
    ("heating", "valve", 140.0),             # out of its range
])
def test_a_wrong_type_or_range_names_the_field(kind: str, field: str, bad: Any) -> None:
    assert [f for f, _ in errors_of({**valid(kind), field: bad})] == [f"{kind}.{field}"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_field_of_every_kind_is_required(kind: str) -> None:
    for field in ("message_id", "sensor_id", "ts", *METRICS[kind]):
        raw = {k: v for k, v in valid(kind).items() if k != field}
        assert errors_of(raw) == [(f"{kind}.{field}", "Field required")]


def test_an_unknown_kind_or_field_is_refused() -> None:
    assert "does not match any of the expected tags" in errors_of({**valid("heating"),
                                                                   "kind": "sauna"})[0][1]
    assert errors_of({**valid("motion"), "colour": "red"}) == [
        ("motion.colour", "Extra inputs are not permitted")]


def test_a_batch_names_the_position_of_the_bad_reading() -> None:
    batch = [valid("heating"), {**valid("meteo"), "pressure": "high"}]
    assert [f for f, _ in errors_of(batch, BATCH)] == ["1.meteo.pressure"]


def test_the_default_house_has_every_kind_and_unique_ids() -> None:
    house = default_house()
    assert len(house.sensors) == 21 and len(house.by_id()) == 21
    assert {s.kind for s in house.sensors} == set(KINDS)
    assert all(s.power_limit for s in house.of_kind("electricity"))
    assert len(generated_house(10).sensors) == 41


@pytest.mark.parametrize("sensors, message", [
    ([{"sensor_id": "a", "kind": "motion", "room": "r"}] * 2, "installed twice"),
    ([{"sensor_id": "c", "kind": "electricity", "room": "r"}], "needs its power_limit"),
    ([{"sensor_id": "h", "kind": "heating", "room": "r", "power_limit": 10}],
     "only electricity sensors"),
    ([{"sensor_id": "h", "kind": "heating", "room": "r", "temperature_range": [30, 10]}],
     "(low, high)"),
])
def test_a_house_described_wrong_is_refused_naming_the_sensor(sensors: list[dict[str, Any]],
                                                              message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        HouseConfig(sensors=sensors)  # type: ignore[arg-type]
