"""The shapes a source-topic line can have (the catalog's `RawFormat`), and the one error a
translator raises."""

from flywheel_contracts.events.records import RAW_FORMAT_HEADER, RawFormat, RejectReason

FORMAT_HEADER = RAW_FORMAT_HEADER
Format = RawFormat


class Untranslatable(Exception):
    """The item cannot become a record; `reason` and the message say why."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
