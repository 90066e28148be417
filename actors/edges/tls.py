"""TLS for the edges: a self-signed certificate made on first run and reused, or a given pair.

The self-signed pair is for development, tests and closed networks: clients trust that one
certificate (``client_context``), not a CA. Production edges pass a real pair to
``context_from_files``.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
import socket
import ssl
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CERT_FILE", "KEY_FILE", "client_context", "context_from_files", "ensure_self_signed",
           "file_lock", "host_names", "self_signed_context", "write_atomically"]

CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
DEFAULT_HOSTNAMES = ("localhost", "127.0.0.1")
VALID_DAYS = 825  # the longest lifetime browsers accept for a server certificate
RENEW_BEFORE = dt.timedelta(days=1)


def self_signed_context(cert_dir: str | os.PathLike[str],
                        hostnames: Sequence[str] = DEFAULT_HOSTNAMES) -> ssl.SSLContext:
    """A server context for the self-signed pair in ``cert_dir``, made there on first use.

    The pair is reused while it is valid for more than a day and names every host in ``hostnames``;
    otherwise a new one replaces it (so a client holding the old certificate must reload it).
    """
    cert, key = ensure_self_signed(cert_dir, hostnames)
    return context_from_files(cert, key)


WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def host_names(host: str) -> tuple[str, ...]:
    """The names a self-signed certificate for an edge bound to ``host`` must carry so that a
    client that verifies it can reach it: localhost and 127.0.0.1 always, ``host`` itself, and
    for a wildcard bind (``0.0.0.0``, ``::``) the machine's host names and every address of its
    interfaces (a client in the house connects to one of those)."""
    names = list(DEFAULT_HOSTNAMES)
    if host in WILDCARD_HOSTS:
        names += [socket.gethostname(), socket.getfqdn(), *_interface_addresses()]
    else:
        names.append(host)
    out: list[str] = []
    for name in names:
        if name and name not in out:
            out.append(name)
    return tuple(out)


def _interface_addresses() -> list[str]:
    """IPv4 and IPv6 addresses of this machine's interfaces (Linux: ioctl and /proc), with what
    the resolver says of its host name as a fallback elsewhere."""
    found: list[str] = []
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
        found += [str(info[4][0]) for info in infos]
    except OSError:
        pass
    siocgifaddr = 0x8915
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(probe.fileno(), siocgifaddr,
                                     struct.pack("256s", name.encode()[:15]))
            except OSError:  # no IPv4 address on that interface
                continue
            found.append(socket.inet_ntoa(packed[20:24]))
    try:
        with open("/proc/net/if_inet6") as table:
            for line in table:
                raw = line.split()[0]
                address = ipaddress.IPv6Address(int(raw, 16))
                if not address.is_link_local:  # needs a zone id a certificate cannot name
                    found.append(str(address))
    except OSError:
        pass
    return found


def context_from_files(cert: str | os.PathLike[str], key: str | os.PathLike[str]) -> ssl.SSLContext:
    """A server context for a certificate chain and its key (TLS 1.2 or newer)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(os.fspath(cert), os.fspath(key))
    return context


def client_context(cert: str | os.PathLike[str]) -> ssl.SSLContext:
    """A client context that trusts exactly ``cert`` (a self-signed edge's) and checks the host name.

    ``cert`` may also be the directory given to ``self_signed_context``.
    """
    path = Path(cert)
    if path.is_dir():
        path = path / CERT_FILE
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=os.fspath(path))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def ensure_self_signed(cert_dir: str | os.PathLike[str],
                       hostnames: Sequence[str] = DEFAULT_HOSTNAMES) -> tuple[Path, Path]:
    """Return ``(cert, key)`` paths in ``cert_dir``, generating the pair if it is missing or unfit.

    Safe against two processes starting together: a file lock serialises them and files are
    renamed into place, so nobody reads half a pair. The key file is created with mode 0600.
    """
    if not hostnames:
        raise ValueError("a certificate needs at least one host name")
    directory = Path(cert_dir)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
    with file_lock(directory / ".lock"):
        if not _reusable(cert_path, key_path, hostnames):
            cert_pem, key_pem = _generate(hostnames)
            write_atomically(key_path, key_pem, mode=0o600)
            write_atomically(cert_path, cert_pem, mode=0o644)
    return cert_path, key_path


def _reusable(cert_path: Path, key_path: Path, hostnames: Sequence[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):  # missing, unreadable or not PEM: make a new pair
        return False
    if cert.not_valid_after_utc - RENEW_BEFORE < dt.datetime.now(dt.timezone.utc):
        return False
    if _spki(cert.public_key()) != _spki(key.public_key()):
        return False  # a half-replaced pair
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return set(map(_general_name, hostnames)) <= set(san)


def _spki(public_key: Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _generate(hostnames: Sequence[str]) -> tuple[bytes, bytes]:
    """A P-256 key (fast to make and to handshake) and a server certificate naming ``hostnames``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0]),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ptr self-signed edge")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate small clock skew
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hostnames]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    """Write to a sibling created with ``mode`` (never briefly world-readable), then rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # O_CREAT's mode is masked by umask and ignored for an existing file
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


@contextmanager
def file_lock(lock_path: Path) -> Iterator[None]:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
