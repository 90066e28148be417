"""The device registry: every sensor's place, kind, limits and credentials, and the gateways' view of
it (``Authenticator``), which sees a revocation on its very next request.

Tokens are 32 random bytes shown once at provisioning and stored as SHA-256 hashes: with 256 bits of
entropy a fast hash is as safe as a slow one (nobody can guess a preimage), and a gateway checks
thousands of requests a second. Revocation: the registry writes the database, then replaces the
``version`` file beside it; each gateway stats that file on every request (about 1 µs) and reloads
the registry when it changed, so the first request after ``revoke`` returns is refused.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import os
import secrets
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from actors.grid.store import SENSORS, create_tables
from actors.storage import storage_error
from protocols.grid import RefusalReason, SensorRecord

CSV_COLUMNS = ("sensor_id", "substation", "kind", "nominal_v", "rating_a", "max_temp_c")


def hash_token(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


class SensorRegistry:
    """The ``grid_sensors`` table. ``version_file`` is the signal gateways watch."""

    def __init__(self, engine: sa.Engine, version_file: str | os.PathLike[str]) -> None:
        self.engine = engine
        self.version_file = Path(version_file)
        create_tables(engine)

    def add(self, record: SensorRecord, token: str | None = None) -> str:
        """Register (or replace) a sensor; returns its token (a new one unless given)."""
        token = token or new_token()
        row = record.model_dump()
        row["token_hash"] = hash_token(token)
        row["revoked"] = False
        self._write([row])
        return token

    def add_many(self, records: list[SensorRecord]) -> dict[str, str]:
        """Register many sensors in one transaction; returns sensor_id -> its new token."""
        tokens = {r.sensor_id: new_token() for r in records}
        self._write([{**r.model_dump(), "token_hash": hash_token(tokens[r.sensor_id]),
                      "revoked": False} for r in records])
        return tokens

    def provision_csv(self, path: str | os.PathLike[str]) -> dict[str, str]:
        """Register every row of a CSV file (header ``sensor_id,substation,kind`` and optionally
        ``nominal_v,rating_a,max_temp_c``) in one transaction; returns sensor_id -> its new token.
        A bad row raises ValueError naming its line, and nothing is registered."""
        rows: list[dict[str, object]] = []
        tokens: dict[str, str] = {}
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = {"sensor_id", "substation", "kind"} - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f"{path}: the header lacks {', '.join(sorted(missing))}")
            for line, raw in enumerate(reader, start=2):
                values = {k: v for k, v in raw.items() if k in CSV_COLUMNS and v not in ("", None)}
                try:
                    record = SensorRecord.model_validate(values)
                except ValueError as exc:
                    raise ValueError(f"{path}:{line}: {exc}") from None
                if record.sensor_id in tokens:
                    raise ValueError(f"{path}:{line}: sensor {record.sensor_id!r} twice")
                token = new_token()
                tokens[record.sensor_id] = token
                rows.append({**record.model_dump(), "token_hash": hash_token(token),
                             "revoked": False})
        self._write(rows)
        return tokens

    def set_certificate(self, sensor_id: str, fingerprint: str) -> None:
        self._update(sensor_id, cert_fingerprint=fingerprint)

    def revoke(self, sensor_id: str) -> None:
        """Revoke a sensor's token and certificate; every gateway refuses its next request."""
        self._update(sensor_id, revoked=True)

    def records(self) -> dict[str, SensorRecord]:
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(sa.select(SENSORS)).mappings().all()
        except SQLAlchemyError as exc:
            raise storage_error(exc, "could not read the sensor registry") from exc
        return {row["sensor_id"]: SensorRecord.model_validate(dict(row)) for row in rows}

    def _update(self, sensor_id: str, **values: object) -> None:
        try:
            with self.engine.begin() as connection:
                done = connection.execute(
                    SENSORS.update().where(SENSORS.c.sensor_id == sensor_id).values(**values))
        except SQLAlchemyError as exc:
            raise storage_error(exc, f"could not update sensor {sensor_id!r}") from exc
        if done.rowcount == 0:
            raise KeyError(f"no sensor {sensor_id!r} in the registry")
        self.bump_version()

    def _write(self, rows: list[dict[str, object]]) -> None:
        if not rows:
            return
        ids = [row["sensor_id"] for row in rows]
        try:
            with self.engine.begin() as connection:
                connection.execute(SENSORS.delete().where(SENSORS.c.sensor_id.in_(ids)))
                connection.execute(SENSORS.insert(), rows)
        except SQLAlchemyError as exc:
            raise storage_error(exc, "could not write the sensor registry") from exc
        self.bump_version()

    def bump_version(self) -> None:
        """Replace the version file (a new inode and mtime): watchers reload."""
        self.version_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.version_file.with_name(f".{self.version_file.name}.{os.getpid()}")
        tmp.write_text(secrets.token_hex(8))
        os.replace(tmp, self.version_file)


class Authenticator:
    """A gateway's cached registry. ``check`` answers a sensor's credentials with its record or
    the refusal reason; the cache is reloaded whenever the registry's version file changed."""

    def __init__(self, registry: SensorRegistry) -> None:
        self.registry = registry
        self._stamp: tuple[int, int] | None = None
        self._sensors: dict[str, SensorRecord] = {}
        self.reloads = 0

    def _fresh(self) -> dict[str, SensorRecord]:
        try:
            st = os.stat(self.registry.version_file)
            stamp = (st.st_ino, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = (0, 0)
        if stamp != self._stamp:
            self._sensors = self.registry.records()
            self._stamp = stamp
            self.reloads += 1
        return self._sensors

    def record(self, sensor_id: str) -> SensorRecord | None:
        return self._fresh().get(sensor_id)

    def check(self, sensor_id: str, token: str | None,
              cert_fingerprint: str | None) -> SensorRecord | RefusalReason:
        if not token and not cert_fingerprint:
            return RefusalReason.MISSING_CREDENTIALS
        record = self._fresh().get(sensor_id)
        if record is None:
            return RefusalReason.UNKNOWN_SENSOR
        if cert_fingerprint:
            if not record.cert_fingerprint or not hmac.compare_digest(
                    cert_fingerprint, record.cert_fingerprint):
                return RefusalReason.WRONG_CERTIFICATE
        elif not hmac.compare_digest(hash_token(token or ""), record.token_hash):
            return RefusalReason.WRONG_TOKEN
        if record.revoked:
            return RefusalReason.REVOKED
        return record
