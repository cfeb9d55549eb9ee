"""A cheap structural check of an MP4 (ISO base media file) as it streams in: its top-level
boxes must cover the file exactly. No decoding: only the 8- or 16-byte header of each
top-level box is read (a handful per file), so a 1 GB video costs a few comparisons.

A box is ``size (4 bytes, big-endian) | type (4 ASCII characters)``; size 1 means a 64-bit
``largesize`` follows the type, size 0 means "to the end of the file" (the last box only).
A video cut short (``mdat`` running past the end of the file, or no ``moov`` or ``mdat`` box
at all when cut at a box boundary), a body that is not an MP4 (an HTML error page, zeros) or
trailing garbage fail the check.
"""

from __future__ import annotations

import struct


class TopLevelBoxes:
    """Feed the file's bytes in order (:meth:`feed`), then :meth:`problem` says what is wrong
    with its box structure, or None when the boxes cover the file exactly."""

    def __init__(self) -> None:
        self._offset = 0  # bytes fed so far
        self._skip = 0  # bytes left of the current box's body
        self._head = bytearray()  # the next box's header, as far as it arrived
        self._box_start = 0
        self._to_end = False  # a size-0 box: the rest of the file is its body
        self._problem: str | None = None
        self.boxes: list[str] = []

    def feed(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        self._offset += len(view)
        at = 0
        while at < len(view) and self._problem is None and not self._to_end:
            if self._skip:
                step = min(self._skip, len(view) - at)
                self._skip -= step
                at += step
                continue
            if not self._head:
                self._box_start = self._offset - len(view) + at
            take = min(self._header_size() - len(self._head), len(view) - at)
            self._head += view[at : at + take]
            at += take
            if len(self._head) == self._header_size():  # 8, or 16 once size 1 is seen
                self._open_box()

    def _header_size(self) -> int:
        return 16 if self._head[:4] == b"\0\0\0\1" else 8

    def _open_box(self) -> None:
        size, raw_type = struct.unpack(">I4s", self._head[:8])
        header = len(self._head)
        if header == 16:
            (size,) = struct.unpack(">Q", self._head[8:16])
        self._head.clear()
        if not all(0x20 <= c < 0x7F for c in raw_type):
            self._problem = f"no MP4 box at byte {self._box_start} (type {raw_type!r})"
            return
        kind = raw_type.decode("ascii")
        self.boxes.append(kind)
        if size == 0 and header == 8:
            self._to_end = True
        elif size < header:
            self._problem = f"box '{kind}' at byte {self._box_start} has size {size}"
        else:
            self._skip = size - header

    def problem(self) -> str | None:
        """What is wrong with the boxes of the bytes fed so far, taken as the whole file."""
        if self._problem is not None:
            return self._problem
        if self._head:
            return f"the file ends inside a box header at byte {self._box_start}"
        if self._skip:
            return (
                f"box '{self.boxes[-1]}' at byte {self._box_start} runs {self._skip} bytes "
                f"past the end of the file ({self._offset} bytes): cut short"
            )
        missing = [kind for kind in ("moov", "mdat") if kind not in self.boxes]
        if missing:  # a video has its metadata and its media data (cut at a box boundary?)
            return f"no '{missing[0]}' box"
        return None
