"""Request bodies sent compressed (OTLP exporters and log shippers gzip theirs): inflated to no
more than a bound, since a small gzip body can unpack to gigabytes."""

import zlib

_GZIP = frozenset({"gzip", "x-gzip"})


class UnsupportedEncoding(ValueError):
    """A `Content-Encoding` other than gzip."""


class CorruptBody(ValueError):
    """The body does not decompress."""


class InflatedTooLarge(ValueError):
    """The body exceeds the bound once decompressed."""


def inflated(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body as it was before compression (as it is without a `Content-Encoding`), never
    inflated past `limit` bytes."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in _GZIP:
        raise UnsupportedEncoding(
            f"Content-Encoding {encoding[:40]!r} is not read here; send gzip or no encoding"
        )
    pieces: list[bytes] = []
    size = 0
    rest = body
    while rest:  # a gzip stream may hold several members, one after the other
        inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
        try:
            piece = inflater.decompress(rest, limit - size + 1)
        except zlib.error as exc:
            raise CorruptBody(f"the gzip body cannot be decompressed: {exc}") from None
        size += len(piece)
        if size > limit or inflater.unconsumed_tail:
            raise InflatedTooLarge(f"the decompressed body exceeds {limit} bytes")
        if not inflater.eof:
            raise CorruptBody("the gzip body is truncated")
        pieces.append(piece)
        rest = inflater.unused_data
    return b"".join(pieces)
