"""Mutual TLS between the application and the custodian: a certificate authority of the
custody domain, the custodian's server certificate, and one client certificate, the
application's.

The authority's key stays in the custody home: only the custody domain can let a new
client in. The application's side is one directory (`ca.pem`, `client.pem`,
`client-key.pem`) written outside the custody home, which the application's host may
read; in production it is copied to that host. The authority signs nothing else, so the
client certificate is what tells the application from anyone else on the network, and
its extended key usage (TLS client only) keeps it from posing as the custodian, as the
server certificate's keeps the custodian's key from posing as the application.

ECDSA P-256 throughout: handshakes stay cheap, and connections are kept alive anyway.
"""

import datetime
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_SERVER_NAMES = ("localhost", "127.0.0.1")
CA_DAYS = 3650
LEAF_DAYS = 825


@dataclass(frozen=True)
class ServerFiles:
    """The custodian's side, in the custody home."""

    ca: Path
    ca_key: Path
    cert: Path
    key: Path

    @classmethod
    def of(cls, home: Path) -> "ServerFiles":
        tls = home / "tls"
        return cls(tls / "ca.pem", tls / "ca-key.pem", tls / "server.pem", tls / "server-key.pem")

    def exist(self) -> bool:
        return all(p.exists() for p in (self.ca, self.ca_key, self.cert, self.key))


@dataclass(frozen=True)
class ClientFiles:
    """The application's side: what it trusts and what it shows."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def of(cls, directory: Path) -> "ClientFiles":
        return cls(directory / "ca.pem", directory / "client.pem", directory / "client-key.pem")

    def exist(self) -> bool:
        return all(p.exists() for p in (self.ca, self.cert, self.key))


class PkiError(Exception):
    pass


def issue(
    home: Path, client_dir: Path, *, server_names: Iterable[str] = DEFAULT_SERVER_NAMES
) -> list[Path]:
    """Create whatever is missing of the authority, the server certificate and the
    application's client directory; keep what exists. Returns the files written."""
    home, client_dir = home.resolve(), client_dir.resolve()
    if client_dir.is_relative_to(home) or home.is_relative_to(client_dir):
        raise PkiError(
            f"the application's directory {client_dir} and the custody home {home} must not "
            "contain one another: the application must not read the custody home"
        )
    server, client = ServerFiles.of(home), ClientFiles.of(client_dir)
    written: list[Path] = []
    # A new authority invalidates every certificate the old one signed.
    fresh = not (server.ca.exists() and server.ca_key.exists())
    if fresh:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _authority(ca_key)
        written += _write_pair(server.ca, ca_cert, server.ca_key, ca_key)
    else:
        ca_key = _load_key(server.ca_key)
        ca_cert = x509.load_pem_x509_certificate(server.ca.read_bytes())
    if fresh or not (server.cert.exists() and server.key.exists()):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _leaf(ca_cert, ca_key, key, "yobikake-custodian", server=list(server_names))
        written += _write_pair(server.cert, cert, server.key, key)
    if fresh or not (client.cert.exists() and client.key.exists()):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _leaf(ca_cert, ca_key, key, "yobikake-application", server=None)
        written += _write_pair(client.cert, cert, client.key, key)
    if fresh or not client.ca.exists():
        _write(client.ca, ca_cert.public_bytes(serialization.Encoding.PEM))
        written.append(client.ca)
    return written


def expiry(path: Path) -> datetime.datetime:
    return x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc


def _authority(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Yobikake custody CA")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey,
    common_name: str,
    *,
    server: list[str] | None,
) -> x509.Certificate:
    """A server certificate for `server` (host names and addresses), or with None the
    application's client certificate."""
    now = datetime.datetime.now(datetime.UTC)
    usage = (
        ExtendedKeyUsageOID.SERVER_AUTH if server is not None else ExtendedKeyUsageOID.CLIENT_AUTH
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if server is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in server]), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256())


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{path} is not an ECDSA key")
    return key


def _write_pair(
    cert_path: Path, cert: x509.Certificate, key_path: Path, key: ec.EllipticCurvePrivateKey
) -> list[Path]:
    _write(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),  # gunicorn and requests read no encrypted key
        ),
    )
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return [key_path, cert_path]


def _write(path: Path, data: bytes) -> None:
    """Owner-only, whole or not at all."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)
