"""Serving IO_READ: an object's bytes in pieces of at most the size Bareos asks for.

A prefetched object is sliced from memory; a large one is read chunk by chunk (256 KiB) from
the helper that streams it or, for the S3 family, straight from the object store (direct.py),
so at most one chunk of it is held at a time.  Pieces are bytearrays:
bareosfd before 22 copies IO_READ data only from a bytearray (a bytes buffer would be skipped
and the file stored as garbage, see docs/bareos-api-notes.md).
"""

from .prefetch import COMPLETE


class ObjectReader:
    """Reads one download; ``read`` returns a bytearray, empty at the end, None if it broke."""

    def __init__(self, download, next_chunk):
        """``next_chunk()``: the stream's next chunk, b"" at its end, None if it broke."""
        self.next_chunk = next_chunk
        self.download = download
        self.view = memoryview(download.data if download.state == COMPLETE else bytearray())
        self.whole = download.data if isinstance(download.data, bytearray) else None
        self.pos = 0
        self.sent = 0

    def close(self):
        """Let go of the object's buffer (an mmap is unmapped when nothing refers to it)."""
        self.view.release()
        self.view = memoryview(bytearray())
        self.whole = None

    def read(self, count):
        if self.pos >= len(self.view):
            if self.download.state == COMPLETE:
                return bytearray()
            chunk = self.next_chunk()
            if chunk is None:
                return None
            if not chunk:
                return bytearray()
            if len(chunk) <= count:  # the usual case: a whole chunk, no copy
                self.sent += len(chunk)
                return chunk
            self.view, self.pos = memoryview(chunk), 0
        if self.pos == 0 and self.whole is not None and len(self.whole) <= count:
            piece = self.whole  # a whole prefetched object smaller than one read: no copy
        else:
            piece = bytearray(self.view[self.pos : self.pos + count])
        self.pos += len(piece)
        if len(piece) < count and self.download.state != COMPLETE:
            self._fill(piece, count)
        self.sent += len(piece)
        return piece

    def _fill(self, piece, count):
        """Top up a chunk's tail from the next chunk, so that Bareos reads whole blocks when it
        asks for less than a chunk (262,136 bytes with sparse=yes): a tail of 8 bytes would be
        a read and a volume record of its own.  A failure or the end shows at the next read."""
        chunk = self.next_chunk()
        if not chunk:
            if chunk is not None:
                self.view, self.pos = memoryview(bytearray()), 0
            return
        self.view, self.pos = memoryview(chunk), min(count - len(piece), len(chunk))
        piece += self.view[: self.pos]
