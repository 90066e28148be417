"""Name rules shared by every log backend, so code written against one backend runs on the others."""

from __future__ import annotations

import re

# JetStream stream names may not contain '.', '*', '>', whitespace or path separators, and KV keys
# allow a small alphabet; this is the intersection, kept for SQLite too so switching backends never
# turns a valid topic into an invalid one.
_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")


def check_name(kind: str, value: str) -> str:
    """Return ``value`` if it is a usable topic, group or prefix name; raise ValueError naming it."""
    if not isinstance(value, str) or _NAME.fullmatch(value) is None:
        raise ValueError(f"{kind} {value!r} must be 1-128 characters of A-Z a-z 0-9 _ -")
    return value
