"""Integration-test guards for the local servers (.ci/services starts them): a test that needs a server
which does not answer is skipped on a laptop and fails under CI, where a skip would hide a broken job."""

from __future__ import annotations

import os
import socket

import pytest

POSTGRES = ("PostgreSQL", "127.0.0.1", 5432)
NATS = ("NATS JetStream", "127.0.0.1", 4222)
MOSQUITTO = ("Mosquitto MQTT", "127.0.0.1", 1883)


def require_service(name: str, host: str, port: int, timeout_s: float = 1.0) -> None:
    """Return if ``host:port`` accepts a TCP connection; otherwise fail (CI=true) or skip the test."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as exc:
        reason = f"{name} does not answer at {host}:{port} ({exc}); start it with .ci/services"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)
