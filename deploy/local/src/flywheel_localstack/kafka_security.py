"""The local Kafka in secured mode: its listeners, principals and generated credentials.

Secured mode (`FLYWHEEL_STACK_KAFKA_SECURITY=sasl_ssl`) has no plaintext listener at all:
- `SASL_SSL` (the usual port) for clients that log in: the six services and the CLI as user
  `flywheel` with SCRAM-SHA-512 (the credential is stored salted in the cluster metadata, written
  when the storage is formatted), the log shipper as user `shipper` with PLAIN (checked against
  the broker's own configuration);
- `MTLS` (an SSL listener that requires a client certificate) for the stack's operator, which
  creates topics and probes health as `CN=flywheel-operator`; the broker also reaches itself
  (inter-broker) through it;
- `CONTROLLER`, TLS with client certificates too: the KRaft controller only admits the broker.

Everything is generated on first use into `<kafka data>/secrets/` (mode 0600) and kept with the
data it belongs to: wiping the data wipes the credentials, so a SCRAM credential formatted into
the storage never outlives its password file. Authentication only: no authorizer runs, so any
authenticated principal may use any topic (ACLs are the cluster operator's, see the README).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from flywheel_localstack.tls import issue, new_authority, write_private

SERVICE_USER = "flywheel"
SHIPPER_USER = "shipper"
SERVICE_MECHANISM = "SCRAM-SHA-512"
SHIPPER_MECHANISM = "PLAIN"
OPERATOR_NAME = "flywheel-operator"


@dataclass(frozen=True)
class KafkaSecrets:
    """The files and passwords of a secured local Kafka, all under `folder`."""

    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def broker_keystore(self) -> Path:
        """The broker's key and certificate in one PEM file, as Kafka's PEM key store wants."""
        return self.folder / "broker.pem"

    @property
    def operator_certificate(self) -> Path:
        return self.folder / "operator.crt"

    @property
    def operator_key(self) -> Path:
        return self.folder / "operator.key"

    @property
    def service_password(self) -> SecretStr:
        return SecretStr((self.folder / f"{SERVICE_USER}.password").read_text().strip())

    @property
    def shipper_password(self) -> SecretStr:
        return SecretStr((self.folder / f"{SHIPPER_USER}.password").read_text().strip())

    @classmethod
    def ensure(cls, folder: Path) -> KafkaSecrets:
        """The credentials in `folder`, generated there the first time."""
        made = cls(folder)
        if made.operator_key.exists():
            return made
        authority = new_authority("Flywheel local stack CA")
        broker = issue(authority, "flywheel-broker", server=True, client=True)
        operator = issue(authority, OPERATOR_NAME, server=False, client=True)
        write_private(folder / "ca.key", authority.key_pem)
        write_private(made.ca, authority.certificate_pem)
        write_private(made.broker_keystore, broker.key_pem + broker.certificate_pem)
        for user in (SERVICE_USER, SHIPPER_USER):
            write_private(folder / f"{user}.password", secrets.token_urlsafe(24).encode())
        write_private(made.operator_certificate, operator.certificate_pem)
        # Written last: its presence says the whole set is there.
        write_private(made.operator_key, operator.key_pem)
        return made

    def format_arguments(self) -> list[str]:
        """`StorageTool format` arguments that store the services' SCRAM credential."""
        password = self.service_password.get_secret_value()
        return ["--add-scram", f"{SERVICE_MECHANISM}=[name={SERVICE_USER},password={password}]"]

    def broker_properties(self, port: int, mtls_port: int, controller_port: int) -> str:
        """The listener and security lines of server.properties."""
        shipper = self.shipper_password.get_secret_value()
        return "\n".join(
            [
                f"listeners=SASL_SSL://127.0.0.1:{port},MTLS://127.0.0.1:{mtls_port},"
                f"CONTROLLER://127.0.0.1:{controller_port}",
                f"advertised.listeners=SASL_SSL://127.0.0.1:{port},MTLS://127.0.0.1:{mtls_port}",
                "listener.security.protocol.map=SASL_SSL:SASL_SSL,MTLS:SSL,CONTROLLER:SSL",
                "inter.broker.listener.name=MTLS",
                "ssl.keystore.type=PEM",
                f"ssl.keystore.location={self.broker_keystore}",
                "ssl.truststore.type=PEM",
                f"ssl.truststore.location={self.ca}",
                "listener.name.mtls.ssl.client.auth=required",
                "listener.name.controller.ssl.client.auth=required",
                f"sasl.enabled.mechanisms={SERVICE_MECHANISM},{SHIPPER_MECHANISM}",
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                "listener.name.sasl_ssl.plain.sasl.jaas.config="
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'user_{SHIPPER_USER}="{shipper}";',
            ]
        )

    def service_client(self) -> dict[str, str]:
        """`KafkaSettings` fields (besides the bootstrap) of a service or the CLI."""
        return {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": SERVICE_MECHANISM,
            "sasl_username": SERVICE_USER,
            "sasl_password": self.service_password.get_secret_value(),
            "ssl_ca_location": str(self.ca),
        }

    def operator_client(self) -> dict[str, str]:
        """`KafkaSettings` fields (besides the bootstrap) of the stack's own admin client."""
        return {
            "security_protocol": "SSL",
            "ssl_ca_location": str(self.ca),
            "ssl_certificate_location": str(self.operator_certificate),
            "ssl_key_location": str(self.operator_key),
        }


PLAINTEXT_LISTENERS = """\
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT"""
