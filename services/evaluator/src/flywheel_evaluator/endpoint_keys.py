"""The key of an external endpoint: named by the run, held by the evaluator, sent to one URL.

A run configuration travels in events, so it only names a key (`endpoint.api_key`); the key
itself is in the evaluator's environment (`FLYWHEEL_EVALUATOR_ENDPOINT_KEYS__<NAME>__KEY`, or
`__KEY_FILE` for a mounted secret, read when an evaluation starts), registered with the one base
URL it may be sent to (`__BASE_URL`). A run naming a key for any other URL fails instead of
sending it: otherwise whoever may request a run could have a key sent to a host of their choice.

URLs are compared as the chat client calls them (trailing slashes dropped, `/v1` added to a URL
without a path), so the check is on where the key would actually go. Failures name the key and
the URLs, never the key's value.
"""

from collections.abc import Mapping

from pydantic import SecretStr

from flywheel_contracts.events import EvalErrorKind
from flywheel_contracts.runtime.nmp.nim import openai_base_url
from flywheel_contracts.runtime.secrets import SecretFileError, secret
from flywheel_evaluator.config import EndpointKey
from flywheel_evaluator.errors import EvaluationFailed

_ENV = "FLYWHEEL_EVALUATOR_ENDPOINT_KEYS__{name}__KEY"


def endpoint_key(keys: Mapping[str, EndpointKey], name: str, base_url: str) -> SecretStr:
    """The key called `name` for a candidate at `base_url`; EvaluationFailed (job_failed) when
    the evaluator holds no such key, holds it for another URL, or cannot read its file."""
    registered = {key_name.casefold(): entry for key_name, entry in keys.items()}.get(
        name.casefold()
    )
    if registered is None:
        env = _ENV.format(name=name.upper())
        raise _refused(
            f"endpoint key {name!r} is not configured in the evaluator (set {env} or "
            f"{env}_FILE, with FLYWHEEL_EVALUATOR_ENDPOINT_KEYS__{name.upper()}__BASE_URL)"
        )
    if openai_base_url(registered.base_url) != openai_base_url(base_url):
        raise _refused(
            f"endpoint key {name!r} is not registered for {base_url} (it is registered for "
            f"{registered.base_url}); the key is not sent"
        )
    return _read(name, registered)


def _read(name: str, entry: EndpointKey) -> SecretStr:
    try:
        key = secret(entry.key, entry.key_file)
    except SecretFileError as exc:
        raise _refused(f"endpoint key {name!r}: {exc}") from None
    assert key is not None  # EndpointKey holds one of the two
    if not key.get_secret_value().strip():
        raise _refused(f"endpoint key {name!r} is empty")
    return key


def _refused(message: str) -> EvaluationFailed:
    return EvaluationFailed(EvalErrorKind.JOB_FAILED, message)
