"""Writes that are whole or absent after a kill -9 or a power cut: every file crossattn
writes goes through here. A file is written under a temporary name in its own directory,
flushed to disk (fsync) and renamed over the final name (``os.replace``, atomic on POSIX);
a directory is filled under a temporary name and renamed into place the same way.

``crash_point`` lets the tests kill the process at each dangerous moment deterministically.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CRASH_ENV = "CROSSATTN_CRASH_AT"


def crash_point(name: str, step: int) -> None:
    """For the crash tests: ``CROSSATTN_CRASH_AT=name:step`` kills this process with SIGKILL
    at that point, so each dangerous moment (mid-checkpoint write, mid-cleanup) is hit
    every time instead of by luck of timing. Unset, it costs one dictionary lookup."""
    if os.environ.get(CRASH_ENV) == f"{name}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)


def temporary_name(path: Path) -> Path:
    """A name beside ``path`` that no other process writing it at the same time uses."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for the caller to write the new contents to; on
    success it is flushed and renamed over ``path``, on failure removed."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2))


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux renameat2 RENAME_EXCHANGE);
    False where the system or the file system cannot, and nothing was changed."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # not Linux, or a C library before glibc 2.28
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a fully written directory into place; the old one goes only afterwards.

    With no ``final`` yet this is one rename. Replacing one is one atomic swap where the
    system has it (Linux), else two renames (``final`` to ``final.old``, then ``tmp`` to
    ``final``): a crash between them leaves no ``final`` and the whole previous version
    under ``.old``, never a mixture."""
    for p in tmp.rglob("*"):
        if p.is_file():
            fsync_file(p)
    fsync_dir(tmp)
    if final.is_dir() and exchange(tmp, final):
        fsync_dir(final.parent)
        crash_point("replace-dir", 1)
        shutil.rmtree(tmp)  # now the previous version
        return
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
        crash_point("replace-dir", 1)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    if old.exists():
        shutil.rmtree(old)


@contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """An empty temporary directory beside ``final`` for the caller to fill; on success
    it replaces ``final`` (replace_dir), on failure it is removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(final)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        replace_dir(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- a log of records, each whole or absent ---------------------------------------------
# Training appends a metrics record every few steps. Rewriting the whole file each time
# would cost O(records) per record; instead each record is one line written by a single
# write() on an O_APPEND descriptor and fsynced. A kill -9 (the kernel may stop a write
# between pages) or a power cut can still leave a torn last line, so the reader drops the
# bytes after the last newline, and ``trim_records`` rewrites the file whole (atomic_path)
# when a run resumes, before anything is appended after such a tear.

def append_record(path: str | Path, record: dict) -> None:
    """Add one JSON record as one line at the end of ``path`` (created if absent)."""
    data = (json.dumps(record) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(path: str | Path) -> list[dict]:
    """The whole records of a log written by ``append_record``, in order: the bytes after
    the last newline (a torn write) are left out; a damaged whole line is an error."""
    path = Path(path)
    if not path.exists():
        return []
    whole = path.read_text(encoding="utf-8", errors="replace").split("\n")[:-1]
    records = []
    for k, line in enumerate(whole, 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise ValueError(f"{path}: line {k} is not a JSON record") from None
    return records


def trim_records(path: str | Path, keep) -> None:
    """Rewrite the log whole with only the records ``keep(record)`` accepts (and without a
    torn last line): a resumed run drops what its lost tail had logged past its checkpoint."""
    path = Path(path)
    if not path.exists():
        return
    records = [r for r in read_records(path) if keep(r)]
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in records))
