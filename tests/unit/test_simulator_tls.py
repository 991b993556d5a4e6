"""The CA is created once and reused; server certificates name every address we answer on."""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from simulator.errors import StartupError
from simulator.tls import CA_CERT, CA_KEY, prepare_tls, subject_alt_names


def _sans(path: Path) -> list[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(name.value) for name in names]


def test_the_ca_is_reused_and_signs_a_fresh_server_certificate(tmp_path: Path) -> None:
    files, context = prepare_tls(tmp_path, "sim.example.test")
    assert isinstance(context, ssl.SSLContext)
    ca_pem, server_pem = files.ca_cert.read_bytes(), files.server_cert.read_bytes()
    assert (tmp_path / CA_KEY).stat().st_mode & 0o077 == 0
    assert files.server_key.stat().st_mode & 0o077 == 0
    assert _sans(files.server_cert) == ["localhost", "127.0.0.1", "::1", "sim.example.test"]

    again, _ = prepare_tls(tmp_path, "127.0.0.1")
    assert again.ca_cert.read_bytes() == ca_pem
    assert again.server_cert.read_bytes() != server_pem
    ca = x509.load_pem_x509_certificate(ca_pem)
    x509.load_pem_x509_certificate(again.server_cert.read_bytes()).verify_directly_issued_by(ca)


def test_a_lone_ca_file_is_an_error_not_silently_replaced(tmp_path: Path) -> None:
    prepare_tls(tmp_path, "localhost")
    (tmp_path / CA_KEY).unlink()
    with pytest.raises(StartupError, match=CA_KEY):
        prepare_tls(tmp_path, "localhost")
    assert (tmp_path / CA_CERT).exists()


@pytest.mark.parametrize(
    ("host", "extra"),
    [("0.0.0.0", None), ("::1", None), ("10.1.2.3", "10.1.2.3"), ("[fe80::1]", "fe80::1")],
)
def test_subject_alt_names(host: str, extra: str | None) -> None:
    names = [str(name.value) for name in subject_alt_names(host)]
    assert names[:3] == ["localhost", "127.0.0.1", "::1"]
    assert names[3:] == ([str(ipaddress.ip_address(extra))] if extra else [])
