"""The bases of what is said: ``Message`` (a frozen pydantic model that pickles across processes)
and ``WireBody`` (a request body as it arrives in JSON at an edge, strict and cheap to pickle)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

SCHEMA_VERSION = 1


class Message(BaseModel):
    """A typed, immutable message.

    Subclasses live at module level (Thespian pickles them between processes) and set ``kind`` to
    a stable wire name when it must differ from the class name. Unknown fields are refused.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    kind: ClassVar[str] = ""

    def __str__(self) -> str:
        """Short on purpose: Thespian formats ``str(message)`` for a debug log on every send, even
        when nothing is logged; a full pydantic repr of a large batch costs milliseconds there.
        ``repr()`` stays complete for debugging and test output."""
        return f"<{self.kind}>"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("kind"):
            cls.kind = cls.__name__


class _Count:
    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __repr__(self) -> str:
        return f"<{self.n} items>"


class BulkMessage(Message):
    """A message that carries thousands of items and shows only their counts in ``repr``/``str``.

    Thespian formats ``str(message)`` for every send (a debug log argument, evaluated whether or not
    it is logged); a pydantic repr of 3,000 datagrams costs ~30 ms, 40 times the pickling.
    """

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, _Count(len(value)) if isinstance(value, (list, tuple, dict)) else value


def _rebuild_wire_body(cls: type[WireBody], fields: dict[str, Any]) -> WireBody:
    body = cls.__new__(cls)
    object.__setattr__(body, "__dict__", fields)
    object.__setattr__(body, "__pydantic_fields_set__", set(fields))
    object.__setattr__(body, "__pydantic_extra__", None)
    object.__setattr__(body, "__pydantic_private__", None)
    return body


class WireBody(BaseModel):
    """Base of every request body an edge validates from JSON: frozen, unknown fields refused,
    strict (no coercion of strings to numbers, no NaN or infinity).

    Not a ``Message``: a body may have a field named ``kind`` (a JSON discriminator), which a
    ``Message`` keeps as a class attribute. Like a message it crosses processes inside an
    ``EdgeItem``; it pickles as its class and field dict (a third of pydantic's own pickling cost),
    without validating again: it was validated at the edge. ``actors.edges.http_edge.plain_body``
    recognises it (and a ``RootModel`` around it).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    def __reduce__(self) -> Any:
        return _rebuild_wire_body, (type(self), self.__dict__)


class ActorArgs(BaseModel):
    """Base of an actor's typed arguments (``Actor.Args``): frozen, no unknown keys, values checked
    as given (an actor's args come from its system's code, not from the wire), any Python object
    allowed as a field type (a ``HouseConfig``, an address)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)
