"""The writer's append-only spill file (docs/store.md): durable lines of JSON, replayed in order.

Each writer process owns one file `journal-<pid>-<random>.jsonl` in the journal folder and holds
an exclusive `flock` on it for its whole life. A file nobody holds belongs to a process that died:
the next writer to start adopts its complete lines (a torn last line was never acknowledged) and
removes it. All methods do blocking I/O: the writer runs them on one thread of its own, in order.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from pathlib import Path

from voxkeep.core import metrics


def _complete_lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
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

    @classmethod
    def open(cls, folder: str | os.PathLike[str]) -> Journal:
        """Create this process's journal, first adopting what dead writers left behind."""
        directory = Path(folder)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"journal-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        journal = cls(path, fd, unread=0)
        for orphan in sorted(directory.glob("journal-*.jsonl")):
            if orphan != path:
                journal._adopt(orphan)
        return journal

    def _adopt(self, orphan: Path) -> None:
        try:
            fd = os.open(orphan, os.O_RDONLY)
        except FileNotFoundError:
            return  # another writer adopted it first
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # its writer is alive
            if not orphan.exists():
                return
            lines = _complete_lines(orphan)
            if lines:
                self.append(lines)
            orphan.unlink()
        finally:
            os.close(fd)

    def append(self, lines: list[bytes]) -> None:
        """Append lines and make them durable before returning."""
        data = b"".join(line + b"\n" for line in lines)
        os.write(self._fd, data)
        os.fsync(self._fd)
        self.unread += len(lines)
        self._count(len(lines), len(data))

    def prepend(self, lines: list[bytes]) -> None:
        """Put `lines` before every unread line (they are older), durably, by rewriting the file
        beside it and renaming it into place. Only at close: the new file is not locked."""
        rest, _ = self.read(2**62)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(b"".join(line + b"\n" for line in [*lines, *rest]))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
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
        with open(self.path, "rb") as f:
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
