"""require_service: a missing server skips a test on a laptop and fails it under CI (CI=true)."""

from __future__ import annotations

import socket

import pytest

from tests.support.services import require_service


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_listening_service_lets_the_test_run() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        require_service("fake", "127.0.0.1", server.getsockname()[1])


@pytest.mark.parametrize("ci", [None, "false", "1"])
def test_a_missing_service_skips_outside_ci(
    monkeypatch: pytest.MonkeyPatch, closed_port: int, ci: str | None
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match=f"fake does not answer at 127.0.0.1:{closed_port}"):
        require_service("fake", "127.0.0.1", closed_port)


def test_a_missing_service_fails_under_ci(monkeypatch: pytest.MonkeyPatch, closed_port: int) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="fake does not answer"):
        require_service("fake", "127.0.0.1", closed_port)
