"""The secured stack's generated credentials: a CA that signs a loopback server certificate and
an operator's client certificate, passwords, all readable by their owner only, made once."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from flywheel_localstack.kafka_security import KafkaSecrets
from flywheel_localstack.tls import issue, new_authority

pytestmark = pytest.mark.unit


def test_every_file_is_private_and_a_second_call_keeps_them(tmp_path: Path) -> None:
    made = KafkaSecrets.ensure(tmp_path / "secrets")
    files = sorted((tmp_path / "secrets").iterdir())
    assert len(files) == 7
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    before = {f.name: f.read_bytes() for f in files}
    again = KafkaSecrets.ensure(tmp_path / "secrets")
    assert {f.name: f.read_bytes() for f in sorted((tmp_path / "secrets").iterdir())} == before
    assert again.service_password.get_secret_value() == made.service_password.get_secret_value()
    assert made.service_password.get_secret_value() != made.shipper_password.get_secret_value()


def test_the_server_certificate_is_for_loopback_and_signed_by_the_ca() -> None:
    authority = new_authority("test CA")
    server = issue(authority, "broker", server=True, client=True)
    names = server.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert ipaddress.ip_address("127.0.0.1") in names.value.get_values_for_type(x509.IPAddress)
    server.certificate.verify_directly_issued_by(authority.certificate)
    usages = server.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}


def test_the_broker_properties_open_no_plaintext_listener_and_hold_no_service_password(
    tmp_path: Path,
) -> None:
    made = KafkaSecrets.ensure(tmp_path)
    properties = made.broker_properties(9092, 9094, 9093)
    assert "PLAINTEXT" not in properties
    assert "listener.name.mtls.ssl.client.auth=required" in properties
    # SCRAM credentials live salted in the cluster metadata, not in the file.
    assert made.service_password.get_secret_value() not in properties
    assert made.format_arguments()[0] == "--add-scram"
