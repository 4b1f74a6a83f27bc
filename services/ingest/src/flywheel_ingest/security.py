"""Whether the intake may start as configured: a pure decision, made while the settings are
validated (so a refused start is a settings error naming what to set)."""

from flywheel_contracts.runtime.network import is_loopback

TOKEN_SETTING = "FLYWHEEL_INGEST_INTAKE__TOKEN"
SCOPED_TOKENS_SETTING = "FLYWHEEL_INGEST_INTAKE__TOKENS__<NAME>__TOKEN"
OPEN_SETTING = "FLYWHEEL_INGEST_INTAKE__OPEN"
HOST_SETTING = "FLYWHEEL_INGEST_HTTP_HOST"


class InsecureIntake(ValueError):
    """The intake would accept anyone's writes from the network."""


def check_intake_exposure(http_host: str, *, authenticated: bool, open_allowed: bool) -> str | None:
    """None when the intake needs a token; a warning to log when it is open on loopback (a
    developer's machine); InsecureIntake when it would be open to the network."""
    if authenticated:
        return None
    if is_loopback(http_host):
        return (
            f"the log intake accepts writes without a token (loopback only); set {TOKEN_SETTING} "
            "to require one"
        )
    if open_allowed:
        return (
            f"the log intake accepts writes without a token on {http_host} ({OPEN_SETTING} is "
            "set); anyone who reaches the port can write any client's records"
        )
    raise InsecureIntake(
        f"{HOST_SETTING}={http_host} is not a loopback address and no intake token is "
        f"configured: set {TOKEN_SETTING} (or {SCOPED_TOKENS_SETTING}), or bind to 127.0.0.1, "
        f"or set {OPEN_SETTING}=true to accept unauthenticated writes deliberately"
    )
