"""Which clients' records a line may hold, decided where the record's client is known.

The intake forwards lines before anything reads them, so a scoped token's name travels with
its lines as a Kafka header (the name, never the secret); ingest checks each record's
`client_id` against that token's clients when it reads the line. A line without the header came
from the global token, an open intake or the log shipper, trusted as before.
"""

from collections.abc import Mapping

from flywheel_contracts.events.records import RejectReason
from flywheel_ingest.config import ScopedToken
from flywheel_ingest.validation import Refusal

TOKEN_HEADER = "flywheel.intake.token"
"""Header of a `logs.raw` message naming the scoped intake token it was sent with."""


def scope_refusal(
    client_id: str, token_name: str | None, tokens: Mapping[str, ScopedToken]
) -> Refusal | None:
    """Why the record of `client_id`, sent with the token named `token_name`, is refused; None
    when that token may write it."""
    if token_name is None:
        return None
    token = tokens.get(token_name)
    if token is None:
        # Removed (or renamed) since the line was sent: what it was allowed is unknown now.
        return Refusal(
            RejectReason.CLIENT_NOT_ALLOWED,
            f"sent with intake token {token_name[:64]!r}, which is not configured",
        )
    if not token.allows(client_id):
        return Refusal(
            RejectReason.CLIENT_NOT_ALLOWED,
            f"client_id {client_id!r} is outside the clients of intake token {token_name!r}",
        )
    return None
