"""Test doubles for code that talks to NMP: a recorded in-memory NMP and a request recorder."""

from .fake import RecordedNmp
from .recording import RecordingTransport, SentRequest

__all__ = ["RecordedNmp", "RecordingTransport", "SentRequest"]
