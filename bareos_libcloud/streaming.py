"""Serving IO_READ: an object's bytes in pieces of at most the size Bareos asks for.

A prefetched object is sliced from memory; a large one is read chunk by chunk from the helper
that streams it, so at most one chunk (1 MiB) of it is held at a time.
"""

from .prefetch import COMPLETE


class ObjectReader:
    """Reads one download; ``read`` returns bytes, b"" at the end, None if the transfer broke."""

    def __init__(self, pool, download):
        self.pool = pool
        self.download = download
        self.buffer = download.data if download.state == COMPLETE else b""
        self.pos = 0
        self.sent = 0

    def read(self, count):
        if self.pos >= len(self.buffer):
            if self.download.state == COMPLETE:
                return b""
            chunk = self.pool.read(self.download)
            if not chunk:
                return chunk
            self.buffer, self.pos = chunk, 0
        piece = self.buffer[self.pos : self.pos + count]
        self.pos += len(piece)
        self.sent += len(piece)
        return piece
