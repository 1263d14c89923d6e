"""Undo a body's compression layers as it streams, within a size cap.

Pure: bytes in, bytes out, nothing touched. Every layer (each name in
Content-Encoding, applied last first, then a body that is itself a gzip file)
is decompressed in pieces of at most ``PIECE`` bytes and counted toward the
cap as it comes, so memory stays near the cap whatever the nesting: a gzip
bomb inside a gzip bomb stops at the cap instead of expanding to gigabytes.

Supported: gzip (x-gzip), deflate (zlib-wrapped or raw), identity. Anything
else is a :class:`DecodeError`, as is a corrupt or truncated stream.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

#: Largest piece any layer hands to the next.
PIECE = 64 * 1024
#: Most compression layers undone for one body (declared and sniffed together).
MAX_LAYERS = 3
_GZIP_MAGIC = b"\x1f\x8b"


class DecodeError(Exception):
    """The body cannot be decoded; the message is one line for the user."""


class TooLarge(DecodeError):
    """A layer produced more than the cap."""


def encodings(header: str | None) -> list[str]:
    """The layers to undo, in decoding order, from a Content-Encoding value."""
    names = [n.strip().lower() for n in (header or "").split(",")]
    layers = []
    for name in names:
        if name in ("", "identity"):
            continue
        if name in ("gzip", "x-gzip"):
            layers.append("gzip")
        elif name == "deflate":
            layers.append("deflate")
        else:
            raise DecodeError(f"unsupported Content-Encoding {name[:40]!r}")
    if len(layers) > MAX_LAYERS:
        raise DecodeError(f"more than {MAX_LAYERS} layers of compression")
    return layers[::-1]


class _Inflate:
    """One gzip or deflate layer, producing output in bounded pieces."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.raw_fallback = kind == "deflate"
        self.obj = self._new()
        self.started = False
        #: Bytes after the end of a gzip member, while too few to tell whether another follows.
        self.after = b""
        self.ignoring = False

    def _new(self) -> zlib._Decompress:
        return zlib.decompressobj(16 + zlib.MAX_WBITS if self.kind == "gzip" else zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data:
            if self.obj.eof:
                data = self.after + data
                self.after = b""
                if self.kind != "gzip" or self.ignoring:
                    return  # bytes after the stream are ignored, as gzip(1) does
                if len(data) < len(_GZIP_MAGIC):
                    self.after = data  # too short to tell whether another member starts
                    return
                if not data.startswith(_GZIP_MAGIC):
                    self.ignoring = True
                    return
                self.obj = self._new()  # a further gzip member
            try:
                out = self.obj.decompress(data, PIECE)
            except zlib.error as exc:
                if self.raw_fallback and not self.started:
                    # Some servers send raw deflate without the zlib wrapper.
                    self.raw_fallback = False
                    self.obj = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise DecodeError(f"cannot decompress the body ({self.kind}): {exc}") from None
            self.started = True
            self.raw_fallback = False
            data = self.obj.unused_data if self.obj.eof else self.obj.unconsumed_tail
            if out:
                yield out

    def finish(self) -> Iterator[bytes]:
        if not self.started and not self.obj.eof:
            return  # no bytes at all: an empty body
        while not self.obj.eof:
            try:
                out = self.obj.decompress(self.obj.unconsumed_tail, PIECE)
            except zlib.error as exc:
                raise DecodeError(f"cannot decompress the body ({self.kind}): {exc}") from None
            if out:
                yield out
                continue
            raise DecodeError(f"the compressed body ({self.kind}) is cut short")


class BodyDecoder:
    """Feed raw body chunks in, get decoded pieces out; every layer counts toward ``cap``.

    After the declared layers, a body that still starts like a gzip file is
    decompressed too (up to :data:`MAX_LAYERS` layers in all): feeds are text,
    and double-compressed answers are a common server mistake.
    """

    def __init__(self, content_encoding: str | None, cap: int) -> None:
        self.cap = cap
        self.layers = [_Inflate(kind) for kind in encodings(content_encoding)]
        #: Bytes each layer produced so far; the last slot counts the decoded body.
        self.sizes = [0] * (len(self.layers) + 1)
        self.sniffing = True
        self.head = b""

    def _count(self, slot: int, piece: bytes) -> None:
        self.sizes[slot] += len(piece)
        if self.sizes[slot] > self.cap:
            raise TooLarge(f"body is over the size limit of {self.cap} bytes (after decompression)")

    def _push(self, depth: int, piece: bytes) -> Iterator[bytes]:
        """``piece`` as it comes out of layer ``depth - 1``, carried through the layers after it."""
        if depth < len(self.layers):
            for out in self.layers[depth].feed(piece):
                self._count(depth, out)
                yield from self._push(depth + 1, out)
            return
        if not self.sniffing:
            self._count(-1, piece)
            yield piece
            return
        self.head += piece
        if len(self.head) < len(_GZIP_MAGIC):
            return
        head, self.head = self.head, b""
        if head.startswith(_GZIP_MAGIC) and len(self.layers) < MAX_LAYERS:
            self.layers.append(_Inflate("gzip"))
            self.sizes.insert(-1, 0)
            yield from self._push(len(self.layers) - 1, head)
            return
        self.sniffing = False
        self._count(-1, head)
        yield head

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        """Decoded pieces for one raw chunk (a generator: pull it to make progress)."""
        return self._push(0, chunk)

    def finish(self) -> Iterator[bytes]:
        """The last decoded pieces, once the raw body has ended."""
        depth = 0
        while depth < len(self.layers):  # a layer found while flushing is flushed in turn
            for out in self.layers[depth].finish():
                self._count(depth, out)
                yield from self._push(depth + 1, out)
            depth += 1
        if self.head:
            head, self.head = self.head, b""
            self._count(-1, head)
            yield head


def decode_all(body: bytes, content_encoding: str | None, cap: int) -> bytes:
    """A whole body decoded at once (for bodies already in memory)."""
    decoder = BodyDecoder(content_encoding, cap)
    return b"".join([*decoder.feed(body), *decoder.finish()])
