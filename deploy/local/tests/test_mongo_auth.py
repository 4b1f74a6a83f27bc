"""SCRAM-SHA-256 in front of the mongo wire server (deploy/local/mongo/MongoLauncher.java).

Each server here is a launcher of its own on a free port with a throwaway data file, never the
stack's; the jars are the ones the stack installs into `.cache/`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from bson.binary import Binary
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from flywheel_localstack import process
from flywheel_localstack.components import Mongo
from flywheel_localstack.config import DEPLOY_LOCAL_DIR, StackSettings

pytestmark = pytest.mark.integration

USER = "flywheel"
PASSWORD = "s3cret:with-colon and space"
LAUNCHER = DEPLOY_LOCAL_DIR / "mongo" / "MongoLauncher.java"
START_TIMEOUT_S = 60

Client = MongoClient[dict[str, Any]]


@dataclass(frozen=True)
class Launched:
    port: int
    log: Path
    record: process.PidRecord


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _spawn(folder: Path, users_file: Path | None) -> Launched:
    settings = StackSettings()
    Mongo(settings).install()  # idempotent: the stack's cached jars, fetched on first use
    lib = settings.cache_dir / f"mongo-java-server-{Mongo.version}" / "lib"
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = folder / "mongo.log"
    cmd = ["java", "-Xmx256m", "-XX:+UseSerialGC", "-cp", f"{lib}/*", str(LAUNCHER)]
    record = process.spawn(
        [*cmd, "127.0.0.1", str(port), str(folder / "data.mv")],
        log_path=log,
        pid_path=folder / "mongo.pid",
        env={"MONGO_LAUNCHER_USERS_FILE": str(users_file)} if users_file else None,
        # Without a users file the caller's own variable, if any, must not switch auth on.
        drop_env_prefixes=("MONGO_LAUNCHER_",),
    )
    return Launched(port, log, record)


def _wait_listening(server: Launched) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not process.port_in_use(server.port):
        code = process.exit_code(server.record)
        if code is not None:
            pytest.fail(f"launcher exited with {code}:\n{server.log.read_text()}")
        if time.monotonic() > deadline:
            process.terminate(server.record, timeout_s=10)
            pytest.fail(
                f"launcher not listening after {START_TIMEOUT_S} s:\n{server.log.read_text()}"
            )
        time.sleep(0.2)


def _wait_exit(server: Launched) -> int:
    deadline = time.monotonic() + START_TIMEOUT_S
    while (code := process.exit_code(server.record)) is None:
        if time.monotonic() > deadline:
            process.terminate(server.record, timeout_s=10)
            pytest.fail(f"launcher still running after {START_TIMEOUT_S} s")
        time.sleep(0.2)
    return code


def _users_file(folder: Path, text: str, mode: int = 0o600) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "users"
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launched]:
    folder = tmp_path_factory.mktemp("secured")
    users = _users_file(folder, f"# local stack\n\n{USER}:{PASSWORD}\nother:another-one\n")
    server = _spawn(folder, users)
    try:
        _wait_listening(server)
        yield server
    finally:
        process.terminate(server.record, timeout_s=10)


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launched]:
    server = _spawn(tmp_path_factory.mktemp("open"), None)
    try:
        _wait_listening(server)
        yield server
    finally:
        process.terminate(server.record, timeout_s=10)


def _client(port: int, credentials: str = "", **options: Any) -> Client:
    query = "?authSource=admin" if credentials else ""
    return MongoClient(
        f"mongodb://{credentials}127.0.0.1:{port}/{query}",
        serverSelectionTimeoutMS=5000,
        connectTimeoutMS=5000,
        socketTimeoutMS=10000,
        **options,
    )


def _login(user: str, password: str) -> str:
    return f"{quote_plus(user)}:{quote_plus(password)}@"


@pytest.mark.parametrize("mechanism", [None, "SCRAM-SHA-256"])
def test_the_right_password_can_write_and_read(secured: Launched, mechanism: str | None) -> None:
    options = {"authMechanism": mechanism} if mechanism else {}
    with _client(secured.port, _login(USER, PASSWORD), **options) as client:
        collection = client.authtest[f"docs_{mechanism or 'default'}"]
        collection.insert_one({"_id": 1, "v": "x"})
        assert collection.find_one({"_id": 1}) == {"_id": 1, "v": "x"}


@pytest.mark.parametrize("user", [USER, "nobody"])
def test_a_wrong_password_or_unknown_user_fails_with_code_18(secured: Launched, user: str) -> None:
    with (
        _client(secured.port, _login(user, "wrong")) as client,
        pytest.raises(OperationFailure) as failure,
    ):
        client.authtest.docs.find_one()
    assert failure.value.code == 18
    assert failure.value.details is not None
    assert failure.value.details["errmsg"] == "Authentication failed."


def test_without_credentials_only_the_handshake_is_allowed(secured: Launched) -> None:
    with _client(secured.port) as client:
        assert client.admin.command("ping")["ok"] == 1
        for attempt in (
            lambda: client.authtest.docs.insert_one({"v": 1}),
            lambda: client.authtest.docs.find_one(),
            lambda: client.list_database_names(),
        ):
            with pytest.raises(OperationFailure) as failure:
                attempt()
            assert failure.value.code == 13
            assert "requires authentication" in str(failure.value)


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, "sha256")


def test_a_plain_three_step_exchange_logs_in_that_connection_only(secured: Launched) -> None:
    """saslStart and saslContinue by hand, without the speculative handshake or
    skipEmptyExchange that PyMongo uses, so the older path of the protocol is covered too."""
    with _client(secured.port, maxPoolSize=1) as client, _client(secured.port) as stranger:
        nonce = base64.b64encode(os.urandom(24)).decode()
        first_bare = f"n={USER},r={nonce}"
        start = client.admin.command(
            "saslStart", 1, mechanism="SCRAM-SHA-256", payload=Binary(b"n,," + first_bare.encode())
        )
        assert start["done"] is False
        server_first = bytes(start["payload"]).decode()
        fields = dict(item.split("=", 1) for item in server_first.split(","))
        assert fields["r"].startswith(nonce) and int(fields["i"]) >= 4096

        salted = hashlib.pbkdf2_hmac(
            "sha256", PASSWORD.encode(), base64.b64decode(fields["s"]), int(fields["i"])
        )
        client_key = _hmac(salted, b"Client Key")
        without_proof = f"c=biws,r={fields['r']}"
        auth_message = f"{first_bare},{server_first},{without_proof}".encode()
        signature = _hmac(hashlib.sha256(client_key).digest(), auth_message)
        proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True)))
        final = client.admin.command(
            "saslContinue",
            1,
            conversationId=start["conversationId"],
            payload=Binary(f"{without_proof},p=".encode() + proof),
        )
        server_signature = base64.b64encode(_hmac(_hmac(salted, b"Server Key"), auth_message))
        assert bytes(final["payload"]) == b"v=" + server_signature
        assert final["done"] is False
        with pytest.raises(OperationFailure) as failure:
            client.authtest.docs.find_one()  # proved, but the conversation is not done yet
        assert failure.value.code == 13

        done = client.admin.command(
            "saslContinue", 1, conversationId=start["conversationId"], payload=Binary(b"")
        )
        assert done["done"] is True
        client.authtest.docs.insert_one({"by": "hand"})
        assert client.authtest.docs.find_one({"by": "hand"}) is not None
        with pytest.raises(OperationFailure) as failure:
            stranger.authtest.docs.find_one()
        assert failure.value.code == 13


def test_the_handshake_names_scram_sha_256(secured: Launched) -> None:
    with _client(secured.port) as client:
        hello = client.admin.command("isMaster", saslSupportedMechs=f"admin.{USER}")
    assert hello["saslSupportedMechs"] == ["SCRAM-SHA-256"]


def test_passwords_stay_out_of_the_log(secured: Launched) -> None:
    with _client(secured.port, _login(USER, "wrong")) as client, pytest.raises(OperationFailure):
        client.admin.command("listDatabases")
    log = secured.log.read_text()
    assert "SCRAM-SHA-256 authentication required, 2 user(s)" in log
    assert PASSWORD not in log and "another-one" not in log and "wrong" not in log


def test_without_the_users_file_variable_the_server_is_open(open_server: Launched) -> None:
    with _client(open_server.port) as client:
        client.authtest.docs.insert_one({"_id": 1})
        assert client.authtest.docs.find_one() == {"_id": 1}
    assert "authentication" not in open_server.log.read_text()


@pytest.mark.parametrize(
    ("text", "mode", "complaint"),
    [
        (f"{USER}:{PASSWORD}\n", 0o644, "owner only"),
        (f"{USER}:pässword\n", 0o600, "line 1: user and password must be printable ASCII"),
        (f"# nobody\n{USER}\n", 0o600, "line 2: expected user:password"),
    ],
)
def test_a_bad_users_file_stops_the_launcher(
    tmp_path: Path, text: str, mode: int, complaint: str
) -> None:
    server = _spawn(tmp_path, _users_file(tmp_path / "etc", text, mode))
    assert _wait_exit(server) == 2
    log = server.log.read_text()
    assert complaint in log
    assert PASSWORD not in log and "pässword" not in log
