"""BlobStore: content-addressed, idempotent, atomic files, and clear errors for bad or unknown links."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.storage import BlobCorruptedError, BlobLinkError, BlobNotFoundError, BlobStore
from protocols.errors import StorageError

HELLO_SHA256 = hashlib.sha256(b"hello").hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def _files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def test_put_returns_the_sha256_link_and_get_returns_the_bytes(store: BlobStore) -> None:
    link = store.put(b"hello")
    assert link == f"blob:sha256:{HELLO_SHA256}"
    assert store.get(link) == b"hello"


def test_a_blob_lives_under_two_levels_of_its_digest(store: BlobStore) -> None:
    link = store.put(b"hello")
    expected = store.root / HELLO_SHA256[:2] / HELLO_SHA256[2:4] / HELLO_SHA256
    assert store.path_for(link) == expected
    assert _files_under(store.root) == [expected]


def test_putting_identical_content_twice_does_not_rewrite_the_file(store: BlobStore) -> None:
    first = store.put(b"hello")
    inode = os.stat(store.path_for(first)).st_ino
    assert store.put(b"hello") == first
    assert os.stat(store.path_for(first)).st_ino == inode
    assert len(_files_under(store.root)) == 1


def test_put_file_streams_a_large_file_to_the_same_link_as_its_bytes(
    store: BlobStore, tmp_path: Path
) -> None:
    content = os.urandom(3 * 1024 * 1024 + 17)  # several read chunks and a partial one
    source = tmp_path / "big.bin"
    source.write_bytes(content)
    link = store.put_file(source)
    assert link == f"blob:sha256:{hashlib.sha256(content).hexdigest()}"
    assert store.get(link, verify=True) == content
    assert store.put(content) == link
    assert len(_files_under(store.root)) == 1, "no staging file is left behind"


def test_put_file_of_stored_content_leaves_no_staging_file(store: BlobStore, tmp_path: Path) -> None:
    store.put(b"hello")
    source = tmp_path / "hello.txt"
    source.write_bytes(b"hello")
    store.put_file(source)
    assert len(_files_under(store.root)) == 1


def test_put_file_of_a_missing_file_raises_storage_error(store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"missing\.bin"):
        store.put_file(tmp_path / "missing.bin")
    assert _files_under(store.root) == []


def test_open_returns_a_readable_binary_file(store: BlobStore) -> None:
    link = store.put(b"hello")
    with store.open(link) as blob:
        assert blob.read(2) == b"he"
        assert blob.read() == b"llo"


def test_exists_tells_stored_from_unknown_links(store: BlobStore) -> None:
    link = store.put(b"hello")
    assert store.exists(link)
    assert not store.exists("blob:sha256:" + "0" * 64)


def test_an_unknown_link_raises_not_found_naming_the_link(store: BlobStore) -> None:
    link = "blob:sha256:" + "0" * 64
    with pytest.raises(BlobNotFoundError, match=link) as caught:
        store.get(link)
    assert isinstance(caught.value, StorageError)
    assert isinstance(caught.value, KeyError)
    with pytest.raises(BlobNotFoundError):
        store.open(link)


@pytest.mark.parametrize(
    "link",
    [
        "",
        HELLO_SHA256,
        f"sha256:{HELLO_SHA256}",
        f"blob:md5:{HELLO_SHA256}",
        f"blob:sha256:{HELLO_SHA256.upper()}",
        f"blob:sha256:{HELLO_SHA256[:-1]}",
        f"blob:sha256:{HELLO_SHA256}\n",
        "blob:sha256:../../../../etc/passwd",
    ],
)
def test_a_malformed_link_raises_link_error_naming_it(store: BlobStore, link: str) -> None:
    for operation in (store.get, store.open, store.exists, store.path_for):
        with pytest.raises(BlobLinkError) as caught:
            operation(link)
        assert repr(link) in str(caught.value)
        assert isinstance(caught.value, StorageError)


def test_a_verified_read_detects_changed_content(store: BlobStore) -> None:
    link = store.put(b"hello")
    store.path_for(link).write_bytes(b"jello")
    assert store.get(link) == b"jello", "an unverified read trusts the file"
    with pytest.raises(BlobCorruptedError, match=link):
        store.get(link, verify=True)


@given(content=st.binary(max_size=4096))
def test_any_content_round_trips_under_its_own_digest(tmp_path_factory: pytest.TempPathFactory,
                                                      content: bytes) -> None:
    store = BlobStore(tmp_path_factory.getbasetemp() / "hypothesis-blobs")
    link = store.put(content)
    assert link == f"blob:sha256:{hashlib.sha256(content).hexdigest()}"
    assert store.get(link, verify=True) == content
    assert store.put(content) == link
