"""Responses taken and not yet in the database: a journal per process, written in batches.

A SQLite file lets one writer in at a time, and each transaction costs more than the
rows it writes: with every response its own transaction, the write was most of a
submission's cost. So a submission appends one line to its process's journal (one
`write`, no transaction) and the resident gets the thank-you page; a thread of the
process writes the journal into the database every `RESPONSE_FLUSH_SECONDS`, many
responses to a transaction (`storage.store_journaled`). On by default beside a SQLite
file; for a database server, when `RESPONSE_JOURNAL_DIR` names a folder.

Nothing is lost and nothing counted twice:

- the line is in the file before the page is answered: it survives the process as a
  SQLite commit does (in WAL mode with `synchronous=NORMAL`, neither is synced to disk);
- a process keeps an exclusive `flock` on each of its journal files until they are
  written and removed; a file nobody holds was left by a process that died, and is
  written by the next process that looks (at its first flush, then every
  `RECOVER_EVERY` seconds, and when it stops);
- a line written to the database once and met again (its process died between the
  commit and the file's removal) is skipped by its token, as a double tap is;
- a line the database refuses, or that cannot be read, is kept in `refused/` beside
  the journals and logged, never dropped (`retry_refused`, the command
  `flask barometer retry-refused`, tries them again once the cause is fixed); the
  database locked or away, lines wait in their file.

Files: `<dir>/<pid>-<random>.jsonl`, created as `.tmp` and renamed once locked, so
that no other process ever takes a file before its owner holds it.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"
#: The folder, among the journals, of responses the database refused.
REFUSED = "refused"
#: A process looks for journals left by dead processes this often (seconds).
RECOVER_EVERY = 10.0
#: Lines of a file kept in memory to write it; beyond (the database away for long),
#: they are read back from the file.
MEMORY_LIMIT = 10_000

#: How a journal stores decoded lines: it returns how many responses it stored and
#: those it refused, as (record, reason) pairs (`storage.store_journaled` in the app).
Write = Callable[[list[dict]], tuple[int, list[tuple[dict, str]]]]

#: Every journal of this process, to close them in a child after a fork.
_journals: weakref.WeakSet[Journal] = weakref.WeakSet()


class Journal:
    """The journal of one database, in one process; `write` stores its lines."""

    def __init__(self, directory: Path, write: Write, interval: float) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.write = write
        self.interval = interval
        #: Guards the current file: appends, and its swap for a new one.
        self._lock = threading.Lock()
        #: One flush at a time in this process.
        self._flush_lock = threading.Lock()
        #: The file being appended to, and its lines as written (read back from the
        #: file only when they could not be written at once).
        self._current: _File | None = None
        #: Files whose write failed (the database away): kept, locked, tried again.
        self._unwritten: list[_File] = []
        #: Every journal file this process holds open (and locked), by descriptor.
        self._open: dict[int, _File] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_recovery = float("-inf")
        _journals.add(self)

    # ----------------------------------------------------------------- taking

    def append(self, record: dict) -> None:
        """Journal one response: when this returns, it is in the file."""
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        with self._lock:
            if self._thread is None:
                self._start()
            current = self._current
            if current is None:
                current = self._current = self._create()
            written = os.write(current.fd, line)
            if written != len(line):  # a full disk: refused rather than half kept
                os.ftruncate(current.fd, os.fstat(current.fd).st_size - written)
                raise OSError(f"journal {current.path}: {written} of {len(line)} bytes written")
            if current.records is not None:
                current.records.append(record)
                if len(current.records) >= MEMORY_LIMIT:  # a long wait for the database
                    current.records = None
            # Counted last: a line the process was stopped before counting is read back.
            current.size += written

    def _create(self) -> _File:
        stem = self.directory / f"{os.getpid()}-{secrets.token_hex(6)}"
        tmp, path = stem.with_suffix(".tmp"), stem.with_suffix(SUFFIX)
        fd = os.open(tmp, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(tmp, path)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        file = self._open[fd] = _File(fd, path, [], 0)
        return file

    # ---------------------------------------------------------------- writing

    def flush(self, *, recover: bool = False, last: bool = False) -> int:
        """Write this process's journal into the database, and with `recover` the
        journals of processes that died; returns the responses stored.

        Files that could not be written before are tried first; while one still fails,
        lines go on into the current file rather than into a new file at each
        interval (which would run the process out of descriptors), unless this is the
        `last` flush of a stopping process.
        """
        with self._flush_lock:
            if recover:
                self._last_recovery = time.monotonic()
                self._unwritten.extend(self._orphans())
            pending, self._unwritten = self._unwritten, []
            stored, failure = self._write_files(pending)
            if not self._unwritten or last:
                with self._lock:
                    current, self._current = self._current, None
                more, failure_now = self._write_files([current] if current else [])
                stored, failure = stored + more, failure or failure_now
            if failure is not None:
                raise failure
            return stored

    def _write_files(self, files: list[_File]) -> tuple[int, Exception | None]:
        """Write each file on its own (one that fails holds up no other); a file that
        fails is kept, locked, for the next flush, and read back from disk then."""
        stored, failure = 0, None
        for file in files:
            try:
                stored += self._write_file(file)
            except Exception as exc:
                file.records = None
                self._unwritten.append(file)
                failure = failure or exc
        return stored, failure

    def _orphans(self) -> list[_File]:
        """The journal files no process holds, locked by this one."""
        found = []
        for path in sorted(self.directory.iterdir()):
            if path.suffix != SUFFIX:  # a ".tmp" is being created, and empty until renamed
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:  # written and removed by its owner meanwhile
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.fstat(fd).st_ino != os.stat(path).st_ino:
                    raise FileNotFoundError(path)  # removed, or another file by the name since
            except (BlockingIOError, FileNotFoundError):  # its process holds it, or it is gone
                os.close(fd)
                continue
            file = self._open[fd] = _File(fd, path, None, None)
            found.append(file)
        return found

    def _write_file(self, file: _File) -> int:
        """Store a locked journal file's lines, then remove and release it; returns
        the responses stored (a line already stored is not counted again)."""
        fd, path = file.fd, file.path
        records, refused = file.records, []
        if records is None or os.fstat(fd).st_size != file.size:  # memory is not the whole file
            records = []
            size = os.fstat(fd).st_size
            for line in (os.pread(fd, size, 0) if size else b"").splitlines():
                try:
                    records.append(json.loads(line))
                except ValueError as exc:  # a line cut short by a machine stopping mid-write
                    refused.append((line.decode(errors="replace"), f"unreadable: {exc}"))
        stored = 0
        if records:
            stored, refused_by_database = self.write(records)
            refused.extend(refused_by_database)
        if refused:
            self._keep_refused(path, refused)
        os.unlink(path)
        del self._open[fd]
        os.close(fd)
        return stored

    def _keep_refused(self, path: Path, refused: list[tuple[object, str]]) -> None:
        for _, reason in refused:
            log.error("journal %s: response not stored (%s), kept in %s", path.name, reason, self.directory / REFUSED)
        _set_aside(self.directory, path.name, refused)

    # ----------------------------------------------------------- the thread

    def _start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="response-journal", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush(recover=time.monotonic() - self._last_recovery >= RECOVER_EVERY)
            except Exception:  # the database away: every line stays in its file
                log.exception("journal: responses not written yet, tried again in %s s", self.interval)

    def close(self) -> None:
        """Stop the thread and write what is left, and any journal a dead process left
        (this process is stopping: it may be the last to look)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        self._thread = None
        atexit.unregister(self.close)
        try:
            self.flush(recover=True, last=True)
        except Exception:  # its files stay, and the next process to flush writes them
            log.exception("journal: responses left in %s for the next start", self.directory)

    def _forget(self) -> None:
        """In a child after a fork: the parent's files and thread are the parent's."""
        self._lock, self._flush_lock = threading.Lock(), threading.Lock()  # maybe held at the fork
        self._thread = None
        open_files, self._open = self._open, {}
        self._current, self._unwritten = None, []
        for fd in open_files:
            with contextlib.suppress(OSError):
                os.close(fd)  # the parent's descriptor keeps the lock


@dataclass
class _File:
    """A journal file this process holds (its descriptor keeps the lock)."""

    fd: int
    path: Path
    #: Its lines as appended by this process, or None: read them from the file.
    records: list[dict] | None
    #: Bytes this process wrote to it (None for another process's file); the file is
    #: read back when its size says otherwise (a write interrupted before it was counted).
    size: int | None


def retry_refused(directory: Path, write: Write) -> tuple[int, int, int]:
    """Try once more the responses set aside in `directory/refused/` (their cause fixed):
    returns how many are stored now, were stored already, and stay set aside, with
    their reason of today. A file is taken whole (renamed) before it is read, so
    that what a worker sets aside meanwhile waits for the next try."""
    folder = directory / REFUSED
    stored = known = kept = 0
    for path in sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []:
        taken = path.with_name(f"{path.name}.{os.getpid()}-retry")
        try:
            os.rename(path, taken)
        except FileNotFoundError:  # taken by another try
            continue
        text = taken.read_text(encoding="utf-8")
        records, stay = [], []
        for line in text.splitlines():
            try:
                entry = json.loads(line)
                record, reason = entry["record"], entry["reason"]
            except (ValueError, TypeError, KeyError):
                record, reason = line, "unreadable"
            if isinstance(record, dict):
                records.append(record)
            else:  # a journal line that could not be read: nothing to store
                stay.append((record, reason))
        try:
            new, refused = write(records) if records else (0, [])
        except BaseException:  # the database away: the file as it was, for another try
            with open(path, "a", encoding="utf-8") as out:
                out.write(text)
            taken.unlink()
            raise
        stored, known = stored + new, known + len(records) - new - len(refused)
        stay.extend(refused)
        _set_aside(directory, path.name, stay)
        kept += len(stay)
        taken.unlink()
    return stored, known, kept


def _set_aside(directory: Path, name: str, refused: list[tuple[object, str]]) -> None:
    """Append responses not stored, with the reason, to `refused/<name>`."""
    if not refused:
        return
    folder = directory / REFUSED
    folder.mkdir(exist_ok=True)
    with open(folder / name, "a", encoding="utf-8") as out:
        for record, reason in refused:
            out.write(json.dumps({"record": record, "reason": reason}, ensure_ascii=False) + "\n")


def _forget_all() -> None:
    for journal in list(_journals):
        journal._forget()


os.register_at_fork(after_in_child=_forget_all)
