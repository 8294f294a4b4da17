"""A forward-only tar reader over a file descriptor (the remote GNU tar's stdout).

`tarfile` in stream mode (`r|`) was the SSH source's bottleneck: it reads the pipe
through its own buffer, joins and slices that buffer on every header, and needed a
read-ahead thread to keep `ssh` from stalling. This reader keeps one small buffer
for headers and small files, and reads the bytes of large files straight from the
pipe into the caller's buffer, so a file's bytes are copied once on their way from
the kernel into the archive being written.

It understands what GNU tar writes with `--format=posix` (ustar headers, pax
extended headers for long or UTF-8 names, large sizes and sub-second mtimes) and,
to be safe with older or other tars, GNU long names and base-256 numbers. Global
pax headers are skipped. A bad checksum or a stream that ends inside a member
raises `TarStreamError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mackuper.core.tarblock import header_sum

BLOCK = 512
BUFFER = 256 << 10
DIRECT_READ = 64 << 10  # a file's bytes beyond this go straight into the caller's buffer
MAX_META = 1 << 20  # a pax header or GNU long name larger than this is refused

REGULAR = frozenset((b"0", b"\0", b"7"))
HARDLINK, SYMLINK, CHARDEV, BLOCKDEV, DIRECTORY, FIFO = b"1", b"2", b"3", b"4", b"5", b"6"
_NO_DATA = frozenset((HARDLINK, SYMLINK, CHARDEV, BLOCKDEV, DIRECTORY, FIFO))
_PAX, _PAX_GLOBAL, _GNU_LONGNAME, _GNU_LONGLINK = b"x", b"g", b"L", b"K"
_POSIX_MAGIC = b"ustar\x00"
_ZERO_BLOCK = bytes(BLOCK)


class TarStreamError(Exception):
    """The stream is not a valid tar archive, or it ended inside one."""


class StartNotFound(TarStreamError):
    """More than BUFFER bytes came before the mark the stream starts after."""


@dataclass(slots=True)
class Member:
    """One member's header. Not frozen: a frozen dataclass sets each of its nine fields
    through object.__setattr__, 1 µs more per member of a remote tar stream."""

    name: str
    type: bytes
    size: int
    mode: int
    mtime: float
    uid: int
    gid: int
    linkname: str
    dumpdir: bytes | None = None
    """A directory's `GNU.dumpdir` pax record (GNU tar's `--listed-incremental`), as sent."""

    @property
    def is_file(self) -> bool:
        return self.type in REGULAR


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _number(field: bytes) -> int:
    """An octal header field, or GNU's base-256 form for values that do not fit."""
    if field and field[0] & 0x80:
        value = int.from_bytes(field[1:], "big")
        if field[0] == 0xFF:  # negative, two's complement over the whole field
            value -= 1 << (8 * (len(field) - 1))
        return value
    try:
        return int(field.rstrip(b"\0 ") or b"0", 8)  # the usual "0000644\0"
    except ValueError:
        pass
    digits = field.split(b"\0", 1)[0].strip(b" ")
    try:
        return int(digits or b"0", 8)
    except ValueError:
        raise TarStreamError(f"invalid number field {digits[:20]!r} in a tar header") from None


def _pax_records(data: bytes) -> dict[str, str]:
    """`length keyword=value\\n` records (POSIX.1-2001)."""
    records: dict[str, str] = {}
    position = 0
    while position < len(data) and data[position] != 0:
        space = data.find(b" ", position)
        try:
            length = int(data[position:space])
        except ValueError:
            raise TarStreamError("invalid pax extended header") from None
        record = data[space + 1 : position + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            raise TarStreamError("invalid pax extended header")
        keyword, value = record[:-1].split(b"=", 1)
        records[_text(keyword)] = _text(value)
        position += length
    return records


class TarStreamReader:
    """Members of one tar stream, strictly in order; read each file's bytes before `next`."""

    def __init__(self, fd: int, after: bytes = b"") -> None:
        """`after`: the stream starts after the first occurrence of these bytes, within
        its first BUFFER bytes (what a remote login shell printed before them is
        skipped, and counted in `skipped`)."""
        self.fd = fd
        self.after = after
        self.skipped = 0
        self._buffer = bytearray(BUFFER)
        self._view = memoryview(self._buffer)
        self._start = 0
        self._end = 0
        self._remaining = 0  # bytes of the current member's data not yet read
        self._padding = 0  # zeros after them, up to the next 512-byte block
        self.ended = False

    # -- raw bytes -------------------------------------------------------------

    def _available(self) -> int:
        return self._end - self._start

    def _fill(self, count: int) -> bool:
        """Make `count` bytes available in the buffer; False at end of stream."""
        if self._available() >= count:
            return True
        if self._start:
            size = self._available()
            self._buffer[:size] = self._buffer[self._start : self._end]
            self._start, self._end = 0, size
        while self._end < count:
            got = os.readv(self.fd, [self._view[self._end :]])
            if not got:
                return False
            self._end += got
        return True

    def _take(self, count: int) -> bytes:
        if count > BUFFER:
            raise TarStreamError("tar header too large")
        if not self._fill(count):
            raise TarStreamError("the tar stream ended inside a header")
        data = bytes(self._view[self._start : self._start + count])
        self._start += count
        return data

    def _skip(self, count: int) -> None:
        if self._end - self._start >= count:
            self._start += count
            return
        while count > 0:
            if not self._available() and not self._fill(1):
                raise TarStreamError("the tar stream ended inside a member")
            step = min(count, self._available())
            self._start += step
            count -= step

    # -- members ---------------------------------------------------------------

    def next(self) -> Member | None:
        """The next member (skipping what is left of the current one), or None at the end."""
        if self.ended:
            return None
        if self.after:
            self._skip_past(self.after)
        if self._remaining or self._padding:
            self._skip(self._remaining + self._padding)
            self._remaining = self._padding = 0
        extended: dict[str, str] = {}
        while True:
            if self._end - self._start < BLOCK and not self._fill(BLOCK):
                if self._available() == 0:
                    self.ended = True  # no end-of-archive blocks: GNU tar always writes them
                    raise TarStreamError("the tar stream ended without its end-of-archive marker")
                raise TarStreamError("the tar stream ended inside a header")
            start = self._start
            header = bytes(self._view[start : start + BLOCK])
            self._start = start + BLOCK
            if header == _ZERO_BLOCK:
                self.ended = True
                return None
            self._check(header)
            kind = header[156:157]
            size = _number(header[124:136])
            if kind in (_PAX, _PAX_GLOBAL, _GNU_LONGNAME, _GNU_LONGLINK):
                if size > MAX_META:
                    raise TarStreamError(f"a {size}-byte tar extended header is too large")
                data = self._meta(size)
                if kind == _PAX:
                    extended.update(_pax_records(data))
                elif kind == _GNU_LONGNAME:
                    extended["path"] = _text(data.split(b"\0", 1)[0])
                elif kind == _GNU_LONGLINK:
                    extended["linkpath"] = _text(data.split(b"\0", 1)[0])
                continue
            return self._member(header, kind, size, extended)

    def _skip_past(self, mark: bytes) -> None:
        while (at := self._buffer.find(mark, self._start, self._end)) < 0:
            if self._available() >= BUFFER:
                raise StartNotFound(f"over {BUFFER >> 10} KiB came before the stream's start")
            if not self._fill(self._available() + 1):
                raise TarStreamError("the stream ended before it started")
        self.skipped = at - self._start
        self._start = at + len(mark)
        self.after = b""

    def _meta(self, size: int) -> bytes:
        padded = size + (-size % BLOCK)
        if padded <= BUFFER:
            return self._take(padded)[:size]
        chunks = []
        left = size
        while left > 0:
            step = min(left, BUFFER)
            chunks.append(self._take(step))
            left -= step
        self._skip(-size % BLOCK)
        return b"".join(chunks)

    @staticmethod
    def _check(header: bytes) -> None:
        field = header[148:156]
        expected = _number(field)
        unsigned = header_sum(header) - sum(field) + 8 * 32
        if expected != unsigned:
            signed = unsigned - 2 * sum(byte for byte in header if byte > 127)
            if expected != signed:
                raise TarStreamError("bad tar header checksum: the stream is not a tar archive")

    def _member(self, header: bytes, kind: bytes, size: int, extended: dict[str, str]) -> Member:
        if "path" in extended:
            name = extended["path"]
        else:
            raw = header[0:100].split(b"\0", 1)[0]
            if header[257:263] == _POSIX_MAGIC:
                prefix = header[345:500].split(b"\0", 1)[0]
                if prefix:
                    raw = prefix + b"/" + raw
            name = _text(raw)
        linkname = extended.get("linkpath", "")
        if not linkname and header[157]:
            linkname = _text(header[157:257].split(b"\0", 1)[0])
        if "size" in extended:
            size = int(extended["size"])
        mtime = float(extended["mtime"]) if "mtime" in extended else float(_number(header[136:148]))
        uid = int(extended["uid"]) if "uid" in extended else _number(header[108:116])
        gid = int(extended["gid"]) if "gid" in extended else _number(header[116:124])
        if size < 0:
            raise TarStreamError(f"negative size for {name}")
        data = 0 if kind in _NO_DATA else size
        self._remaining = data
        self._padding = -data % BLOCK
        return Member(
            name=name,
            type=kind,
            size=size if kind in REGULAR else 0,
            mode=_number(header[100:108]) & 0o7777,
            mtime=mtime,
            uid=uid,
            gid=gid,
            linkname=linkname,
            dumpdir=(
                extended["GNU.dumpdir"].encode("utf-8", "surrogateescape")
                if "GNU.dumpdir" in extended
                else None
            ),
        )

    # -- file data -------------------------------------------------------------

    def readinto(self, view: memoryview) -> int:
        """Fill `view` with the current member's bytes; fewer only at its end, 0 after it."""
        wanted = min(len(view), self._remaining)
        done = 0
        if wanted and self._available():
            done = min(wanted, self._available())
            view[:done] = self._view[self._start : self._start + done]
            self._start += done
        while done < wanted:
            if wanted - done < DIRECT_READ:
                # A small rest (a short file, the end of one): fill the buffer, so the
                # headers and small files after it come in the same read.
                if not self._fill(1):
                    raise TarStreamError("the tar stream ended inside a member")
                step = min(wanted - done, self._available())
                view[done : done + step] = self._view[self._start : self._start + step]
                self._start += step
            else:
                step = os.readv(self.fd, [view[done:wanted]])
                if not step:
                    raise TarStreamError("the tar stream ended inside a member")
            done += step
        self._remaining -= done
        return done

    def rest(self, limit: int) -> bytes | None:
        """Everything after the end-of-archive marker (its record padding included),
        or None when more than `limit` bytes follow."""
        chunks = [bytes(self._view[self._start : self._end])]
        self._start = self._end = 0
        size = len(chunks[0])
        while size <= limit:
            count = os.readv(self.fd, [self._view])
            if not count:
                return b"".join(chunks)
            chunks.append(bytes(self._view[:count]))
            size += count
        return None

    def drain(self, limit: int = 4 << 20) -> bool:
        """Read to the end of the stream; False if over `limit` bytes follow the archive.

        tar pads its output to a whole record (10 KiB by default, 1 MiB with
        `-b 2048`); no tar sends megabytes after its end-of-archive marker, and a
        server that does must not keep a backup reading forever.
        """
        self._start = self._end = 0
        while limit > 0:
            count = os.readv(self.fd, [self._view])
            if not count:
                return True
            limit -= count
        return False
