"""The simulator's own certificate authority and the server certificate it signs.

The CA lives in the state directory as ``ca.pem`` (+ ``ca-key.pem``) and is reused on every
start, so the ``THREADCAST_CA_BUNDLE`` a user configured once stays valid across restarts. The
server certificate is issued afresh on each start for the host being served.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from simulator.errors import StartupError

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
SERVER_CERT = "server.pem"
SERVER_KEY = "server-key.pem"
_LOCK = ".tls.lock"
CA_VALIDITY = dt.timedelta(days=3650)
SERVER_VALIDITY = dt.timedelta(days=365)
_BACKDATE = dt.timedelta(days=1)  # tolerate clocks that disagree a little
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - names, not a bind


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path


def prepare_tls(state_dir: Path, host: str) -> tuple[TlsFiles, ssl.SSLContext]:
    """Reuse or create the CA, issue a server certificate for ``host``, load it.

    Simulators sharing a state directory take turns, so none reads a half-written file.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    with _locked(state_dir / _LOCK):
        ca = load_or_create_ca(state_dir)
        files = TlsFiles(state_dir / CA_CERT, state_dir / SERVER_CERT, state_dir / SERVER_KEY)
        cert, key = issue_server_certificate(ca, host)
        _write(files.server_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        _write(files.server_key, _private_pem(key), 0o600)
        return files, server_context(files)


def server_context(files: TlsFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.server_cert, files.server_key)
    context.set_alpn_protocols(["http/1.1"])
    return context


def load_or_create_ca(state_dir: Path) -> CertificateAuthority:
    cert_path, key_path = state_dir / CA_CERT, state_dir / CA_KEY
    if cert_path.exists() and key_path.exists():
        return _load_ca(cert_path, key_path)
    if cert_path.exists() or key_path.exists():
        raise StartupError(
            f"{state_dir} holds only one of {CA_CERT} and {CA_KEY}; restore the other or delete "
            "both to create a new CA (clients must then trust the new ca.pem)"
        )
    ca = _create_ca()
    _write(key_path, _private_pem(ca.key), 0o600)
    _write(cert_path, ca.cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return ca


def issue_server_certificate(
    ca: CertificateAuthority, host: str
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "threadcast simulator")])
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + SERVER_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(subject_alt_names(host)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return cert, key


def subject_alt_names(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    extra = _host_name(host)
    if extra is not None and extra not in names:
        names.append(extra)
    return names


def _host_name(host: str) -> x509.GeneralName | None:
    if host in _WILDCARD_HOSTS:
        return None
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return x509.DNSName(host.lower())


def _create_ca() -> CertificateAuthority:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "threadcast simulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, "threadcast simulator local CA"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(cert, key)


def _load_ca(cert_path: Path, key_path: Path) -> CertificateAuthority:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except ValueError as exc:
        raise StartupError(f"cannot read the CA in {cert_path.parent}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise StartupError(f"{key_path} is not the private key of {cert_path}")
    if cert.not_valid_after_utc <= dt.datetime.now(dt.UTC):
        raise StartupError(
            f"the CA {cert_path} expired on {cert.not_valid_after_utc:%Y-%m-%d}; delete "
            f"{CA_CERT} and {CA_KEY} to create a new one"
        )
    return CertificateAuthority(cert, key)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically, ``mode`` set from the start (a private key is never world-readable)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
