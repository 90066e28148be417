"""The results database and the queue's log, plain Python (no Thespian).

``JobStore`` keeps three tables in one SQL database (SQLite by default, any ``make_engine`` URL):
jobs (one row per client request), results (one row per ``(image_hash, model_version)``, written
with ON CONFLICT DO NOTHING, so a result is stored once however often it is computed) and the
quarantine. A job's state is read from them: a result or a quarantine row is its answer.

``open_queue(url)`` is the durable log the jobs wait in: a ``sqlite:///`` file (embedded default)
or NATS JetStream at ``nats://host:port/PREFIX``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from actors.storage import DurableLog, JetStreamLog, SqliteLog, make_engine, storage_error
from protocols.errors import ConfigError
from protocols.inference import JobView, TextLine

__all__ = ["JobStore", "QUEUE_TOPIC", "QUEUE_GROUP", "open_queue"]

QUEUE_TOPIC = "inference-jobs"
QUEUE_GROUP = "inference-dispatcher"

_METADATA = sa.MetaData()
JOBS = sa.Table(
    "inference_jobs", _METADATA,
    sa.Column("job_id", sa.String(32), primary_key=True),
    sa.Column("image_hash", sa.String(64), nullable=False, index=True),
    sa.Column("model_version", sa.String(), nullable=False),
    sa.Column("cached", sa.Boolean(), nullable=False),
    sa.Column("submitted_at", sa.Float(), nullable=False),
)
RESULTS = sa.Table(
    "inference_results", _METADATA,
    sa.Column("image_hash", sa.String(64), primary_key=True),
    sa.Column("model_version", sa.String(), primary_key=True),
    sa.Column("status", sa.String(8), nullable=False),     # done | failed
    sa.Column("lines", sa.Text(), nullable=False),          # JSON list of TextLine
    sa.Column("error", sa.Text(), nullable=False),
    sa.Column("batch_size", sa.Integer(), nullable=False),
    sa.Column("worker_pid", sa.Integer(), nullable=False),
    sa.Column("finished_at", sa.Float(), nullable=False),
)
QUARANTINE = sa.Table(
    "inference_quarantine", _METADATA,
    sa.Column("image_hash", sa.String(64), primary_key=True),
    sa.Column("model_version", sa.String(), primary_key=True),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("crashes", sa.Integer(), nullable=False),
    sa.Column("quarantined_at", sa.Float(), nullable=False),
)


class JobStore:
    """Jobs, results and the quarantine. Every method may raise ``StorageError``."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self._insert = sqlite_insert if self.engine.dialect.name == "sqlite" else pg_insert
        try:
            _METADATA.create_all(self.engine, checkfirst=True)
        except SQLAlchemyError as exc:
            raise storage_error(exc, f"could not create the inference tables in {url}") from exc

    def close(self) -> None:
        self.engine.dispose()

    def add_jobs(self, rows: list[dict[str, Any]]) -> None:
        """Insert job rows (job_id, image_hash, model_version, cached, submitted_at); a job id
        already stored is kept (a replayed queue entry)."""
        if rows:
            self._write(self._insert(JOBS).on_conflict_do_nothing(), rows, "store jobs")

    def commit_results(self, rows: list[dict[str, Any]]) -> int:
        """Store results in one transaction, each at most once per (image_hash, model_version);
        return how many were new (the rest were already stored, and kept)."""
        if not rows:
            return 0
        statement = self._insert(RESULTS).on_conflict_do_nothing()
        try:
            with self.engine.begin() as connection:
                inserted = 0
                for row in rows:   # one statement each for its rowcount; one transaction
                    inserted += connection.execute(statement, row).rowcount
                return inserted
        except SQLAlchemyError as exc:
            raise storage_error(exc, "could not store results") from exc

    def quarantine(self, image_hash: str, model_version: str, reason: str, crashes: int) -> None:
        self._write(self._insert(QUARANTINE).on_conflict_do_nothing(),
                    [{"image_hash": image_hash, "model_version": model_version,
                      "reason": reason, "crashes": crashes, "quarantined_at": time.time()}],
                    "quarantine an input")

    def answered(self, hashes: Iterable[str], model_version: str) -> set[str]:
        """The hashes among ``hashes`` that have a result or are quarantined."""
        wanted = list(set(hashes))
        found: set[str] = set()
        try:
            with self.engine.connect() as connection:
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start:start + 500]
                    for table in (RESULTS, QUARANTINE):
                        found.update(connection.execute(
                            sa.select(table.c.image_hash).where(
                                table.c.model_version == model_version,
                                table.c.image_hash.in_(chunk))).scalars())
        except SQLAlchemyError as exc:
            raise storage_error(exc, "could not read results") from exc
        return found

    def job(self, job_id: str, running: bool = False) -> JobView | None:
        """The job's view, or None for an unknown id (``running``: the dispatcher says a worker
        has it; the database alone cannot tell queued from running)."""
        try:
            with self.engine.connect() as connection:
                job = connection.execute(sa.select(JOBS).where(JOBS.c.job_id == job_id)).first()
                if job is None:
                    return None
                key = (RESULTS.c.image_hash == job.image_hash,
                       RESULTS.c.model_version == job.model_version)
                result = connection.execute(sa.select(RESULTS).where(*key)).first()
                held = None if result is not None else connection.execute(
                    sa.select(QUARANTINE).where(QUARANTINE.c.image_hash == job.image_hash,
                                                QUARANTINE.c.model_version == job.model_version)
                ).first()
        except SQLAlchemyError as exc:
            raise storage_error(exc, f"could not read job {job_id}") from exc
        view: dict[str, Any] = {"job_id": job.job_id, "image_hash": job.image_hash,
                                "model_version": job.model_version, "cached": job.cached,
                                "submitted_at": job.submitted_at,
                                "state": "running" if running else "queued"}
        if result is not None:
            view.update(state=result.status, error=result.error, finished_at=result.finished_at,
                        lines=[TextLine(**line) for line in json.loads(result.lines)])
        elif held is not None:
            view.update(state="quarantined", error=held.reason, finished_at=held.quarantined_at)
        return JobView(**view)

    def counts(self) -> dict[str, int]:
        """Rows per table, and result keys stored more than once (0 by the primary key)."""
        try:
            with self.engine.connect() as connection:
                def count(table: sa.Table) -> int:
                    return int(connection.execute(
                        sa.select(sa.func.count()).select_from(table)).scalar_one())
                return {"jobs": count(JOBS), "results": count(RESULTS),
                        "quarantined": count(QUARANTINE)}
        except SQLAlchemyError as exc:
            raise storage_error(exc, "could not count rows") from exc

    def unanswered_jobs(self) -> list[str]:
        """Jobs with neither a result nor a quarantine row (the bench's jobs_lost at the end)."""
        answered = sa.union(
            sa.select(RESULTS.c.image_hash, RESULTS.c.model_version),
            sa.select(QUARANTINE.c.image_hash, QUARANTINE.c.model_version)).subquery()
        query = sa.select(JOBS.c.job_id).select_from(JOBS.outerjoin(answered, sa.and_(
            answered.c.image_hash == JOBS.c.image_hash,
            answered.c.model_version == JOBS.c.model_version))).where(
            answered.c.image_hash.is_(None))
        try:
            with self.engine.connect() as connection:
                return list(connection.execute(query).scalars())
        except SQLAlchemyError as exc:
            raise storage_error(exc, "could not read jobs") from exc

    def _write(self, statement: Any, rows: list[dict[str, Any]], what: str) -> None:
        try:
            with self.engine.begin() as connection:
                connection.execute(statement, rows)
        except SQLAlchemyError as exc:
            raise storage_error(exc, f"could not {what}") from exc


def result_row(image_hash: str, model_version: str, lines: list[TextLine], *, error: str = "",
               batch_size: int, worker_pid: int) -> dict[str, Any]:
    return {"image_hash": image_hash, "model_version": model_version,
            "status": "failed" if error else "done",
            "lines": json.dumps([line.model_dump() for line in lines]), "error": error,
            "batch_size": batch_size, "worker_pid": worker_pid, "finished_at": time.time()}


def open_queue(url: str) -> DurableLog:
    """The queue's durable log: ``sqlite:///path`` or ``nats://host:port/PREFIX`` (streams
    ``PREFIX_inference-jobs``; PREFIX defaults to ``PTR_INFERENCE``)."""
    if url.startswith("sqlite:"):
        return SqliteLog(url)
    if url.startswith("nats://"):
        parts = urlsplit(url)
        prefix = parts.path.strip("/") or "PTR_INFERENCE"
        try:
            return JetStreamLog(f"nats://{parts.netloc}", stream_prefix=prefix)
        except ValueError as exc:
            raise ConfigError(f"queue_url {url!r}: {exc}") from None
    raise ConfigError(f"queue_url {url!r}: the queue is a sqlite:/// file or "
                      "nats://host:port/PREFIX")
