"""Secrets from mounted files: read at use, trailing newline dropped, errors without content."""

from pathlib import Path

import pytest
from pydantic import SecretStr

from flywheel_contracts.runtime.secrets import SecretFileError, read_secret_file, secret

pytestmark = pytest.mark.unit


def test_a_secret_file_is_read_without_its_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("s3cr3t value\r\n")
    assert read_secret_file(path).get_secret_value() == "s3cr3t value"


@pytest.mark.parametrize("content", [b"", b"\n", b"   \n", b"\xff\xfes3cr3t"])
def test_an_empty_or_binary_secret_file_is_refused_without_its_content(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "key"
    path.write_bytes(content)
    with pytest.raises(SecretFileError) as refused:
        read_secret_file(path)
    assert "s3cr3t" not in str(refused.value)
    assert str(path) in str(refused.value)


def test_a_missing_secret_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(SecretFileError, match=r"cannot read .*missing"):
        read_secret_file(tmp_path / "missing")


def test_a_secret_given_directly_wins_over_a_file(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("from-file")
    assert secret(SecretStr("direct"), path) == SecretStr("direct")
    assert secret(None, path) == SecretStr("from-file")
    assert secret(None, None) is None
