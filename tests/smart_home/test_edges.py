"""The HTTPS edges as a client the project did not write meets them: a request line too long to
parse is a JSON 400 with no traceback in the log; a connection that sends nothing (or half a
request) is closed after ``idle_timeout_s``; with ``host=0.0.0.0`` the certificate names the
machine's addresses, so a client that verifies it connects to any of them."""

from __future__ import annotations

import json
import logging
import socket
import ssl
import time

import pytest
from cryptography import x509

from actors.edges.tls import CERT_FILE, host_names
from tests.support.smart_home import start_home


def _tls(url: str, context: ssl.SSLContext, server_hostname: str = "127.0.0.1") -> ssl.SSLSocket:
    port = int(url.rsplit(":", 1)[1])
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(raw, server_hostname=server_hostname)


def _read_all(sock: ssl.SSLSocket, deadline_s: float) -> bytes:
    """What the server sends until it closes the connection (or the deadline passes)."""
    sock.settimeout(0.2)
    out = b""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except (ConnectionResetError, ssl.SSLError):
            break
        if not chunk:
            break
        out += chunk
    return out


def test_an_over_long_request_line_and_other_bad_http_are_json_4xx_and_no_traceback(make_runtime, tmp_path,
                                                                   caplog) -> None:
    caplog.set_level(logging.INFO)
    home = start_home(make_runtime, tmp_path)
    assert home.context is not None
    for url in (home.ingest_url, home.api_url):
        sock = _tls(url, home.context)
        sock.sendall(b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = _read_all(sock, 10)
        sock.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.split(b" ")[1] == b"400", answer[:200]
        assert b"application/json" in head
        assert json.loads(body)["refusal"] == "invalid"
    close = b"Connection: close\r\n"
    odd = [b"GET /nope HTTP/1.1\r\nHost: x\r\n" + close + b"\r\n",              # 404
           b"PUT /readings HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n" + close + b"\r\n",
           b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n",
           b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n",
           b"POST /readings HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
           b"POST /readings HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"]
    for raw in odd:
        sock = _tls(home.ingest_url, home.context)
        sock.sendall(raw)
        answer = _read_all(sock, 10)
        sock.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        assert 400 <= status < 500 and b"application/json" in head, (raw[:40], answer[:300])
        assert "error" in json.loads(body)
    assert logging.getLogger("aiohttp.server").propagate   # where aiohttp's traceback went
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_idle_and_slow_connections_are_closed_after_the_idle_timeout(make_runtime,
                                                                     tmp_path) -> None:
    home = start_home(make_runtime, tmp_path, idle_timeout_s=0.5)
    assert home.context is not None
    idle = _tls(home.ingest_url, home.context)
    slow = _tls(home.ingest_url, home.context)
    slow.sendall(b"POST /readings HTTP/1.1\r\nHost: x\r\n")  # half a request, then nothing
    started = time.monotonic()
    assert _read_all(idle, 10) == b""
    assert _read_all(slow, 10) == b""
    assert time.monotonic() - started < 5        # closed by the edge, not by the deadline
    idle.close()
    slow.close()
    assert home.post("/readings", {"bad": 1}).status == 400  # the edge serves on


def test_a_certificate_for_0_0_0_0_names_the_machines_addresses(make_runtime, tmp_path) -> None:
    names = host_names("0.0.0.0")
    others = [n for n in names if n not in ("localhost", "127.0.0.1", "::1")
              and n.replace(".", "").replace(":", "").isalnum() and ("." in n or ":" in n)]
    home = start_home(make_runtime, tmp_path, host="0.0.0.0")
    cert = x509.load_pem_x509_certificate((tmp_path / "tls" / CERT_FILE).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    named = {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    named |= set(san.get_values_for_type(x509.DNSName))
    assert set(names) <= named and "127.0.0.1" in named
    addresses = [n for n in others if n in named and ":" not in n]
    if not addresses:
        pytest.skip("this machine has no non-loopback IPv4 address")
    port = int(home.ingest_url.rsplit(":", 1)[1])
    assert home.context is not None
    with socket.create_connection((addresses[0], port), timeout=10) as raw, \
            home.context.wrap_socket(raw, server_hostname=addresses[0]) as tls:
        assert tls.version() is not None     # the hostname check passed for that address
