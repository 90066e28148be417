"""The grid's own certificate authority: it signs the gateways' server certificate and a client
certificate per sensor (mTLS). Its key stays in ``ca_dir`` (mode 0600); a sensor's certificate names
the sensor in its common name, and the registry keeps its SHA-256 fingerprint, so a revoked sensor's
certificate is refused although the CA signed it."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import ssl
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from actors.edges.tls import file_lock, write_atomically

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
SERVER_CERT = "gateway.pem"
SERVER_KEY = "gateway-key.pem"
VALID_DAYS = 825


def fingerprint(cert_der: bytes) -> str:
    return "sha256:" + hashlib.sha256(cert_der).hexdigest()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ptr grid")])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class GridCA:
    """Made on first use in ``ca_dir`` (under a file lock: gateways start together) and reused."""

    def __init__(self, ca_dir: str | os.PathLike[str],
                 hostnames: Sequence[str] = ("localhost", "127.0.0.1")) -> None:
        self.dir = Path(ca_dir)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.cert_path, self.key_path = self.dir / CA_CERT, self.dir / CA_KEY
        with file_lock(self.dir / ".lock"):
            self._make(hostnames)

    def _make(self, hostnames: Sequence[str]) -> None:
        if not self.cert_path.exists() or not self.key_path.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            cert = self._builder(_name("ptr grid CA"), _name("ptr grid CA"), key.public_key()) \
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True) \
                .sign(key, hashes.SHA256())
            write_atomically(self.key_path, _pem_key(key), mode=0o600)
            write_atomically(self.cert_path, cert.public_bytes(serialization.Encoding.PEM),
                             mode=0o644)
        self.cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        loaded = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        self.key = loaded
        self.server_cert, self.server_key = self.dir / SERVER_CERT, self.dir / SERVER_KEY
        if not self._covers(hostnames):
            cert_pem, key_pem = self._issue(hostnames[0], server_names=hostnames)
            write_atomically(self.server_key, key_pem, mode=0o600)
            write_atomically(self.server_cert, cert_pem, mode=0o644)

    def _covers(self, hostnames: Sequence[str]) -> bool:
        """Whether the gateways' certificate exists and names every host in ``hostnames``."""
        try:
            cert = x509.load_pem_x509_certificate(self.server_cert.read_bytes())
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except (OSError, ValueError, x509.ExtensionNotFound):
            return False
        names = {str(v) for v in san.get_values_for_type(x509.IPAddress)} | \
            set(san.get_values_for_type(x509.DNSName))
        return set(hostnames) <= names

    def _builder(self, subject: x509.Name, issuer: x509.Name,
                 public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        now = dt.datetime.now(dt.UTC)
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                .public_key(public_key).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=VALID_DAYS)))

    def _issue(self, common_name: str, *, server_names: Sequence[str] = ()) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = self._builder(_name(common_name), self.cert.subject, key.public_key()) \
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        if server_names:
            names: list[x509.GeneralName] = []
            for host in server_names:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    names.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False) \
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
        else:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)

    def issue_sensor(self, sensor_id: str, out_dir: str | os.PathLike[str]) -> tuple[Path, Path, str]:
        """A client certificate for ``sensor_id`` written to ``out_dir``: (cert, key, fingerprint)."""
        cert_pem, key_pem = self._issue(sensor_id)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = out / f"{sensor_id}.pem", out / f"{sensor_id}-key.pem"
        write_atomically(key_path, key_pem, mode=0o600)
        write_atomically(cert_path, cert_pem, mode=0o644)
        der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
        return cert_path, key_path, fingerprint(der)

    def server_context(self) -> ssl.SSLContext:
        """The gateways' context: the CA-signed server pair; a client certificate is optional and,
        when sent, must chain to this CA (the handshake fails otherwise)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.server_cert, self.server_key)
        context.load_verify_locations(self.cert_path)
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def client_context(self, cert: str | os.PathLike[str] | None = None,
                       key: str | os.PathLike[str] | None = None) -> ssl.SSLContext:
        """A sensor's context: trusts this CA; presents ``cert``/``key`` when given (mTLS)."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.cert_path))
        if cert is not None:
            context.load_cert_chain(cert, key)
        return context
