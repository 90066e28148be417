"""Who a player is: Argon2id password hashes for accounts, HMAC-signed session tokens for the UDP side.

The lobby hashes and verifies passwords; a login hands out a token that a game server verifies on a
join datagram with nothing but the shared secret: no database, no message to the lobby, ~2 us.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from protocols.game import InvalidTokenError

__all__ = ["HASH_PROFILES", "Passwords", "SessionTokens"]

HashProfile = Literal["owasp", "fast"]

HASH_PROFILES: dict[str, dict[str, int]] = {
    # OWASP's Argon2id minimum (19 MiB, 2 passes, 1 lane): ~32 ms per hash on this machine.
    "owasp": {"time_cost": 2, "memory_cost": 19_456, "parallelism": 1},
    # Tests and load generation only: ~0.6 ms per hash. Never for real accounts.
    "fast": {"time_cost": 1, "memory_cost": 1_024, "parallelism": 1},
}


class Passwords:
    """Argon2id hashing (argon2-cffi, which releases the GIL: hashes run in parallel in threads).

    ``verify`` of an unknown account still spends one hash on a dummy, so the answer time does not
    tell which names exist.
    """

    def __init__(self, profile: HashProfile = "owasp") -> None:
        if profile not in HASH_PROFILES:
            raise ValueError(f"unknown hash profile {profile!r}; choose one of {sorted(HASH_PROFILES)}")
        self.profile = profile
        settings: dict[str, Any] = dict(HASH_PROFILES[profile])
        self._hasher = PasswordHasher(**settings)
        self._dummy = self._hasher.hash("not a password anyone has")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """True if ``password`` matches; False for a mismatch, a corrupt hash or no account."""
        try:
            return self._hasher.verify(stored_hash or self._dummy, password) and stored_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SessionTokens:
    """Signs and verifies ``v1.<player_id>.<expires_at>.<HMAC-SHA256>`` tokens.

    Stateless: any process with the secret verifies a token. A token cannot be revoked before it
    expires (keep ``ttl_s`` short, or rotate the secret to revoke all). The clock is injected so
    tests move time instead of sleeping.
    """

    VERSION = "v1"

    def __init__(self, secret: str | bytes, *, ttl_s: float = 3600.0,
                 clock: Callable[[], float] = time.time) -> None:
        key = secret.encode() if isinstance(secret, str) else secret
        if len(key) < 16:
            raise ValueError("a token secret needs at least 16 bytes")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self._key = key
        self.ttl_s = ttl_s
        self._clock = clock

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, player_id: int) -> tuple[str, int]:
        """A token for ``player_id`` and its expiry (Unix seconds)."""
        expires_at = int(self._clock() + self.ttl_s)
        payload = f"{self.VERSION}.{player_id}.{expires_at}"
        return f"{payload}.{self._mac(payload)}", expires_at

    def verify(self, token: str) -> int:
        """The player id the token was issued for; ``InvalidTokenError`` says why not."""
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != self.VERSION:
            raise InvalidTokenError("malformed")
        _, player, expires, mac = parts
        if not all(f.isascii() and f.isdigit() and len(f) <= 12 for f in (player, expires)):
            raise InvalidTokenError("malformed")
        if not hmac.compare_digest(mac, self._mac(f"{self.VERSION}.{player}.{expires}")):
            raise InvalidTokenError("bad signature")
        if int(expires) < self._clock():
            raise InvalidTokenError("expired")
        return int(player)
