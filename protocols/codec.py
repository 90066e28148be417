"""Wire codecs for the edges: msgpack for datagrams and JSON for HTTP, both versioned.

An encoded message is an envelope ``{"v": SCHEMA_VERSION, "k": kind, "d": fields}``. A codec knows
the message classes it may produce; anything else is an ``InvalidMessageError``, never a crash.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

import msgpack
from pydantic import ValidationError

from protocols.errors import InvalidMessageError
from protocols.message import SCHEMA_VERSION, Message

M = TypeVar("M", bound=Message)


def field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors as ``[{"field": "a.b", "error": "..."}]`` for a 400 body."""
    return [{"field": ".".join(str(p) for p in e["loc"]) or "(body)", "error": e["msg"]}
            for e in exc.errors()]


class Codec(Generic[M]):
    """Encodes and decodes a closed set of message classes."""

    def __init__(self, types: Iterable[type[M]]) -> None:
        self._types: dict[str, type[M]] = {}
        for t in types:
            if t.kind in self._types:
                raise ValueError(f"two message classes share the kind {t.kind!r}")
            self._types[t.kind] = t

    @property
    def kinds(self) -> list[str]:
        return sorted(self._types)

    def to_dict(self, msg: M) -> dict[str, Any]:
        return {"v": SCHEMA_VERSION, "k": msg.kind, "d": msg.model_dump(mode="json")}

    def from_dict(self, env: Any) -> M:
        if not isinstance(env, dict):
            raise InvalidMessageError("envelope must be a map with v, k and d")
        version, kind, fields = env.get("v"), env.get("k"), env.get("d")
        if version != SCHEMA_VERSION:
            raise InvalidMessageError(f"unsupported schema version {version!r}", kind=kind,
                                      errors=[{"field": "v", "error": f"expected {SCHEMA_VERSION}"}])
        cls = self._types.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise InvalidMessageError(f"unknown message kind {kind!r}", kind=None,
                                      errors=[{"field": "k", "error": "unknown kind"}])
        if not isinstance(fields, dict):
            raise InvalidMessageError("d must be a map", kind=kind,
                                      errors=[{"field": "d", "error": "not a map"}])
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise InvalidMessageError(f"invalid {kind}", kind=kind, errors=field_errors(exc)) from None

    def to_msgpack(self, msg: M) -> bytes:
        packed: bytes = msgpack.packb(self.to_dict(msg), use_bin_type=True)
        return packed

    def from_msgpack(self, data: bytes) -> M:
        try:
            env = msgpack.unpackb(data, raw=False, strict_map_key=True)
        except Exception as exc:  # msgpack raises several unrelated types for garbage
            raise InvalidMessageError(f"not msgpack: {type(exc).__name__}") from None
        return self.from_dict(env)

    def to_json(self, msg: M) -> bytes:
        return json.dumps(self.to_dict(msg), separators=(",", ":")).encode()

    def from_json(self, data: bytes | str) -> M:
        try:
            env = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidMessageError(f"not JSON: {exc}") from None
        return self.from_dict(env)
