"""The writer's append-only spill file (docs/store.md): durable lines of JSON, replayed in order.

Each writer process owns one file `journal-<pid>-<random>.jsonl` in the journal folder and holds
an exclusive `flock` on it for its whole life. A file nobody holds belongs to a process that died:
the next writer to start adopts its complete lines (a torn last line was never acknowledged) and
removes it. A journal file is locked before it can be seen under that name: it is created and
locked as `.opening-…`, then renamed, so a writer starting at the same moment never takes a live
writer's new file for a dead one's. All methods do blocking I/O: the writer runs them on one
thread of its own, in order.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from voxkeep.core import metrics

STALE_S = 60.0
"""An `.opening-…` or `….jsonl.tmp` file older than this, and not locked, was left by a process
killed while it opened its journal or rewrote it at close (its journal file still holds every
line): the next writer removes it."""


def _complete_lines(fd: int) -> list[bytes]:
    with open(os.dup(fd), "rb") as f:
        data = f.read()
    end = data.rfind(b"\n")
    return [line for line in data[: end + 1].split(b"\n") if line] if end >= 0 else []


class Journal:
    def __init__(self, path: Path, fd: int, unread: int) -> None:
        self.path = path
        self._fd = fd
        self._offset = 0  # bytes of the file already handed out by read()
        self.unread = unread
        self._backlog = (0, 0)  # (records, bytes) this journal counts in the metrics

    def _count(self, records: int, size: int) -> None:
        """Keep the backlog metrics (docs/metrics.md) in step with the file."""
        metrics.journal_records().inc(records)
        metrics.journal_bytes().inc(size)
        self._backlog = (self._backlog[0] + records, self._backlog[1] + size)

    @property
    def id(self) -> str:
        """The journal's name, as the store knows it (`journals`)."""
        return journal_id(self.path)

    @classmethod
    def open(
        cls, folder: str | os.PathLike[str], closed: Callable[[str], bytes] | None = None
    ) -> Journal:
        """Create this process's journal, first adopting what dead writers left behind: each
        one's complete lines, followed by `closed(its id)` (the line that, once replayed, says
        all of that journal is in the store), in one append."""
        directory = Path(folder)
        directory.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        path = directory / f"journal-{name}.jsonl"
        fd = _locked(directory / f".opening-{name}", os.O_CREAT | os.O_EXCL)
        os.rename(directory / f".opening-{name}", path)
        journal = cls(path, fd, unread=0)
        for orphan in sorted(directory.glob("journal-*.jsonl")):
            if orphan != path:
                journal._adopt(orphan, closed)
        _remove_stale(directory)
        return journal

    def _adopt(self, orphan: Path, closed: Callable[[str], bytes] | None) -> None:
        try:
            fd = os.open(orphan, os.O_RDONLY)
        except FileNotFoundError:
            return  # another writer adopted it first
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # its writer is alive
            if not _names(orphan, fd):
                return  # adopted and removed meanwhile, or replaced by its writer's prepend
            lines = _complete_lines(fd)
            if lines and closed is not None:
                lines.append(closed(journal_id(orphan)))
            if lines:
                self.append(lines)
            orphan.unlink()
        finally:
            os.close(fd)

    def append(self, lines: list[bytes]) -> None:
        """Append lines and make them durable before returning; or raise, leaving the file as it
        was. A disk that takes only part of the lines (a short write, then ENOSPC) must not
        leave a torn line behind: the next append would be glued onto it, and its first record,
        acknowledged, would be unreadable."""
        data = memoryview(b"".join(line + b"\n" for line in lines))
        end = os.fstat(self._fd).st_size
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
            os.fsync(self._fd)
        except BaseException:
            os.ftruncate(self._fd, end)  # (shrinking takes no space)
            raise
        self.unread += len(lines)
        self._count(len(lines), len(data))

    def prepend(self, lines: list[bytes]) -> None:
        """Put `lines` before every unread line (they are older), durably, by rewriting the file
        beside it (locked before it is renamed into place, so nobody adopts it meanwhile)."""
        rest, _ = self.read(2**62)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = _locked(tmp, os.O_CREAT | os.O_TRUNC)
        os.write(fd, b"".join(line + b"\n" for line in [*lines, *rest]))
        os.fsync(fd)
        os.replace(tmp, self.path)
        os.close(self._fd)  # (the replaced file's lock goes with it)
        self._fd = fd
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._offset = 0
        self.unread = len(lines) + len(rest)
        self._count(len(lines), sum(len(line) + 1 for line in lines))

    def read(self, max_lines: int) -> tuple[list[bytes], int]:
        """Up to `max_lines` unread lines, and the offset to pass to `consumed` once they are
        committed to the store. Reading does not consume: a crash before `consumed` replays."""
        with open(os.dup(self._fd), "rb") as f:  # (the file, whatever its name now)
            f.seek(self._offset)
            lines: list[bytes] = []
            offset = self._offset
            for line in f:
                if len(lines) == max_lines or not line.endswith(b"\n"):
                    break
                lines.append(line.rstrip(b"\n"))
                offset += len(line)
        return lines, offset

    def consumed(self, offset: int, count: int) -> None:
        """Mark lines up to `offset` as committed; empty the file once everything is."""
        self._count(-count, self._offset - offset)
        self._offset = offset
        self.unread -= count
        if self.unread == 0 and os.fstat(self._fd).st_size == offset:
            os.ftruncate(self._fd, 0)
            self._offset = 0

    def close(self, *, remove: bool) -> None:
        self._count(-self._backlog[0], -self._backlog[1])  # what is left, the next writer counts
        if remove and self.unread == 0:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)


def journal_id(path: Path) -> str:
    return path.name.removeprefix("journal-").removesuffix(".jsonl")


def _locked(path: Path, flags: int) -> int:
    """Open `path` for appending and hold its exclusive lock."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | flags, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _names(path: Path, fd: int) -> bool:
    """Whether `path` still names the file open as `fd`."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _remove_stale(directory: Path) -> None:
    cutoff = time.time() - STALE_S
    for path in [*directory.glob(".opening-*"), *directory.glob("journal-*.jsonl.tmp")]:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _names(path, fd) and os.fstat(fd).st_mtime < cutoff:
                path.unlink()
        except BlockingIOError:
            pass  # its process is alive
        finally:
            os.close(fd)
