"""Storage for ptr, plain Python (no Thespian): read ``engine`` (databases), then ``rows`` (idempotent
batches), ``blobs`` (content-addressed files) and ``log`` (the durable log and its backends).

Every failure a caller must handle is a ``protocols.errors.StorageError``; argument mistakes raise
ValueError or TypeError before anything is stored. A fault of the outside world (disk full, read-only
file, server gone) is a ``StorageUnavailableError``: back off and retry (``faults.StorageBackoff``).
"""

from actors.storage.blobs import BlobCorruptedError, BlobLinkError, BlobNotFoundError, BlobStore
from actors.storage.engine import DEFAULT_URL, default_url, make_engine
from actors.storage.faults import StorageBackoff, storage_error
from actors.storage.log import DurableLog, LogEntry
from actors.storage.log_jetstream import JetStreamLog
from actors.storage.log_sqlite import SqliteLog
from actors.storage.rows import KEY_COLUMN, RecordTable, RowWriter

__all__ = [
    "DEFAULT_URL",
    "KEY_COLUMN",
    "BlobCorruptedError",
    "BlobLinkError",
    "BlobNotFoundError",
    "BlobStore",
    "DurableLog",
    "JetStreamLog",
    "LogEntry",
    "RecordTable",
    "RowWriter",
    "SqliteLog",
    "StorageBackoff",
    "default_url",
    "make_engine",
    "storage_error",
]
