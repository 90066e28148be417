"""The base of every typed message: a frozen pydantic model that pickles across processes."""

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
