"""What real producers send, turned into Flywheel's log record.

Producers (NeMo Agent Toolkit's Data Flywheel exporter, OpenTelemetry exporters, NeMo Relay)
reach the intake in their own shapes. The intake keeps each item as the producer sent it and
puts it on the source topic with a `flywheel.format` header naming its shape; ingest turns it
into a record when it reads the line (`translate.verdict`), so a refused item is kept in
`logs.rejected` exactly as it arrived, and a changed mapping applies to a replay.
"""

from flywheel_ingest.producers.formats import FORMAT_HEADER, Format, Untranslatable

__all__ = ["FORMAT_HEADER", "Format", "Untranslatable"]
