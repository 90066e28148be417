"""What is said: typed messages (frozen pydantic models), their wire codecs, and ptr's errors.

Pure data: nothing here imports Thespian. Read ``message`` and ``supervision`` first.
"""

from protocols.codec import Codec, field_errors
from protocols.errors import (
    ActorSystemError,
    ConfigError,
    InvalidMessageError,
    NoSuchNameError,
    PtrError,
    RequestTimeoutError,
    SpecError,
    StorageError,
)
from protocols.message import SCHEMA_VERSION, Message
from protocols.supervision import ExitKind, ExitReason

__all__ = ["SCHEMA_VERSION", "ActorSystemError", "Codec", "ConfigError", "ExitKind", "ExitReason",
           "InvalidMessageError", "Message", "NoSuchNameError", "PtrError", "RequestTimeoutError",
           "SpecError", "StorageError", "field_errors"]
