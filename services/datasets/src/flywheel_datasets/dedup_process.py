"""The deduplication process: `python -m flywheel_datasets.dedup_process THRESHOLD STREAMS`.

It reads frames from its stdin, each a page's offers as JSON (stream, user turns) after its
length, and answers each on its stdout with the page's verdict bytes (`dedup.decide`) after
their length. It ends when its stdin closes. It imports what deduplication needs and no more
(not the service, not the event catalog), so that it starts in a fraction of a second.
"""

import signal
import struct
import sys

import orjson

from flywheel_datasets.dedup import Deduplicator, Offer, decide
from flywheel_datasets.gc_tuning import collect_less_often

FRAME_LENGTH = struct.Struct("!I")


def main() -> None:
    # Ctrl-C reaches the whole process group; the service decides when this process ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    collect_less_often()
    near_threshold, streams = float(sys.argv[1]), int(sys.argv[2])
    deduplicators = [Deduplicator(near_threshold) for _ in range(streams)]
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    while len(header := source.read(FRAME_LENGTH.size)) == FRAME_LENGTH.size:
        (length,) = FRAME_LENGTH.unpack(header)
        offers: list[Offer] = orjson.loads(source.read(length))
        verdicts = decide(deduplicators, offers)
        sink.write(FRAME_LENGTH.pack(len(verdicts)))
        sink.write(verdicts)
        sink.flush()


if __name__ == "__main__":
    main()
