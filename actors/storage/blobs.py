"""Content-addressed blob files: a blob's link is the SHA-256 of its bytes, so storing is idempotent,
links never dangle by being overwritten, and a reader can check what it got.

Layout: ``root/ab/cd/abcd...`` (the full hex digest, fanned out by its first two byte pairs).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from actors.storage.faults import unavailable_os_error
from protocols.errors import (
    BlobCorruptedError,
    BlobLinkError,
    BlobNotFoundError,
    StorageError,
    StorageUnavailableError,
)

LINK_PREFIX = "blob:sha256:"
_LINK = re.compile(r"blob:sha256:([0-9a-f]{64})")
_CHUNK = 1 << 20


class BlobStore:
    """Stores byte strings and files under ``root`` by content; safe for concurrent writers.

    A blob appears under its final name only once complete and fsynced (temp file in the store,
    fsync, ``os.replace``, directory fsync), so a crash leaves either the whole blob or none.
    Writing content that is already stored touches nothing. Files are created mode 0600 (mkstemp):
    only the owning user reads them.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its link ``blob:sha256:<hex>``. Raises StorageError on an I/O error."""
        digest = hashlib.sha256(data).hexdigest()
        final = self._path(digest)
        if not final.exists():
            try:
                final.parent.mkdir(parents=True, exist_ok=True)
                self._install(_write_temp(final.parent, [data]), final)
            except OSError as exc:
                raise _os_failure(exc, f"could not store blob {LINK_PREFIX}{digest}") from exc
        return LINK_PREFIX + digest

    def put_file(self, path: Path | str) -> str:
        """Store a file's content, read in 1 MiB chunks, and return its link.

        The hash is known only at the end, so the copy is staged in the store's root (the same file
        system as its final place, so the rename stays atomic). Raises StorageError on an I/O error,
        including a missing source file.
        """
        hasher = hashlib.sha256()
        try:
            with open(path, "rb") as source:
                temp_path = _write_temp(self.root, _chunks(source, hasher.update))
            final = self._path(hasher.hexdigest())
            if final.exists():
                temp_path.unlink()
            else:
                self._install(temp_path, final)
        except OSError as exc:
            raise _os_failure(exc, f"could not store blob from {path}") from exc
        return LINK_PREFIX + hasher.hexdigest()

    def temp_file(self) -> tuple[BinaryIO, Path]:
        """A new hidden temp file in the store's root (mode 0600), open for writing, and its path:
        for a caller that streams bytes in (an upload) and hashes them as they come, then hands
        the file to ``adopt``. The caller closes it, and removes it if it does not adopt it."""
        handle, name = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        return os.fdopen(handle, "wb"), Path(name)

    def adopt(self, temp_path: Path | str, digest: str) -> str:
        """Install a complete temp file from ``temp_file`` under its SHA-256 ``digest`` (hex, as
        the caller computed while writing it) and return its link: fsynced, renamed into place,
        the directory fsynced. Content already stored is kept and the temp file removed. Raises
        BlobLinkError for a malformed digest, StorageError on an I/O error (the temp is removed)."""
        final = self._path(_digest(LINK_PREFIX + digest))
        temp_path = Path(temp_path)
        try:
            if final.exists():
                temp_path.unlink()
            else:
                descriptor = os.open(temp_path, os.O_RDONLY)
                try:
                    os.fsync(descriptor)
                finally:
                    os.close(descriptor)
                self._install(temp_path, final)
        except OSError as exc:
            temp_path.unlink(missing_ok=True)
            raise _os_failure(exc, f"could not store blob {LINK_PREFIX}{digest}") from exc
        return LINK_PREFIX + digest

    def get(self, link: str, *, verify: bool = False) -> bytes:
        """The blob's bytes. With ``verify``, re-hash them and raise BlobCorruptedError on mismatch
        (costs one SHA-256 pass; worth it when the bytes leave the process)."""
        with self.open(link) as blob:
            data = blob.read()
        if verify:
            actual = hashlib.sha256(data).hexdigest()
            if actual != _digest(link):
                raise BlobCorruptedError(link, actual)
        return data

    def open(self, link: str) -> BinaryIO:
        """The blob as a binary file opened for reading; the caller closes it."""
        path = self.path_for(link)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise BlobNotFoundError(link, self.root) from None
        except OSError as exc:
            raise _os_failure(exc, f"could not open blob {link}") from exc

    def exists(self, link: str) -> bool:
        """Whether the store holds the blob. A malformed link raises BlobLinkError, never False."""
        return self.path_for(link).exists()

    def path_for(self, link: str) -> Path:
        """Where the blob lives (or would live); raises BlobLinkError for a malformed link."""
        return self._path(_digest(link))

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    @staticmethod
    def _install(temp_path: Path, final: Path) -> None:
        """Rename a complete, fsynced temp file into place and fsync the directory so the name is durable."""
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp_path, final)
        except BaseException:
            temp_path.unlink(missing_ok=True)
            raise
        _fsync_directory(final.parent)


def _write_temp(directory: Path, chunks: Iterable[bytes]) -> Path:
    """Write ``chunks`` to a new hidden temp file in ``directory`` and fsync it; remove it on failure."""
    handle, name = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as temp:
            for chunk in chunks:
                temp.write(chunk)
            temp.flush()
            os.fsync(temp.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _os_failure(exc: OSError, what: str) -> StorageError:
    """No space, a read-only or failing disk: ``StorageUnavailableError``; anything else a plain
    ``StorageError`` (a missing source file is the caller's mistake)."""
    if unavailable_os_error(exc):
        return StorageUnavailableError(f"{what}: {exc}")
    return StorageError(f"{what}: {exc}")


def _chunks(source: BinaryIO, observe: Callable[[bytes], object]) -> Iterator[bytes]:
    while chunk := source.read(_CHUNK):
        observe(chunk)
        yield chunk


def _digest(link: str) -> str:
    match = _LINK.fullmatch(link) if isinstance(link, str) else None
    if match is None:
        raise BlobLinkError(link)
    return match.group(1)


def _fsync_directory(directory: Path) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    descriptor = os.open(directory, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
