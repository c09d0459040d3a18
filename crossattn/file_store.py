"""What ``crossattn serve`` keeps of the files it translated (LibreTranslate's file API:
``POST /translate_file`` stores the translation, ``GET /download_file/NAME`` hands it out).

Uploads are untrusted, and so is every name a client sends, so the store:

* keeps the files in a private temporary folder of its own (mode 0700, made by
  ``tempfile.mkdtemp``), removed with everything in it when the server stops; the folder
  of a server that was killed (kill -9, a power cut) cannot remove itself, so a new store
  removes those it finds: its own prefix and owner, named for a process that is gone;
* names each file with ``secrets.token_urlsafe`` (192 random bits), never anything taken
  from the upload: the upload's base name is kept only as the download name that the
  ``Content-Disposition`` header proposes, never as a path;
* hands a file out once: it is deleted as it is downloaded, or ``ttl_s`` seconds after it
  was stored, whichever comes first (a thread sweeps the expired ones);
* caps the bytes it holds (``max_bytes``): a translation that would go over is refused
  with 503, so a flood of uploads never fills the disk;
* answers a name it did not hand out (guessed, expired, downloaded already, or with a
  path in it) as unknown: only names of the exact shape it makes are looked up at all.

Files are written whole or not at all (atomic.write_bytes_atomic).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from .atomic import write_bytes_atomic
from .server_api import APIError

TOKEN_BYTES = 24  # token_urlsafe(24): 32 characters, 192 random bits
TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")
EXTENSION = re.compile(r"\.[a-z0-9]{1,8}")  # what a stored file's URL may end with


PREFIX = "crossattn-files-"
ABANDONED = re.compile(re.escape(PREFIX) + r"(\d+)-[A-Za-z0-9_]+")


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def remove_abandoned(root: Path) -> list[Path]:
    """Remove the store folders in ``root`` left by servers that were killed: named by a
    store (PREFIX, a process id), ours (same owner), whose process is gone. A folder whose
    process id was taken by another process since is kept (the safe side)."""
    removed = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for path in entries:
        m = ABANDONED.fullmatch(path.name)
        try:
            if not m or path.is_symlink() or not path.is_dir() or path.stat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        if not process_alive(int(m.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


@dataclass
class StoredFile:
    path: Path
    download_name: str  # the upload's base name, for Content-Disposition only
    size: int
    expires: float  # on the store's clock


def download_name(upload_name: str) -> str:
    """The upload's base name, without any folder a client put in it (``../x.txt``,
    ``C:\\docs\\x.txt``) or control characters; "document" if nothing is left."""
    base = re.split(r"[\\/]", upload_name or "")[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip().lstrip(".")
    if len(base) > 200:  # shortened before its extension, which says what the file is
        stem, suffix = os.path.splitext(base)
        base = stem[: 200 - len(suffix[:20])] + suffix[:20]
    return base or "document"


def content_disposition(name: str) -> str:
    """``attachment`` with ``name`` as an ASCII fallback and, for other characters, RFC 6266's
    ``filename*`` in UTF-8 (every browser reads it)."""
    fallback = re.sub(r'[^A-Za-z0-9._ -]', "_", name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


class FileStore:
    """Translated files waiting to be downloaded (module docstring)."""

    def __init__(self, ttl_s: float = 600.0, max_bytes: int = 256 << 20, root: str | Path | None = None,
                 clock: Callable[[], float] = time.monotonic):
        """``root``: the folder to make the private folder in (default: the system's
        temporary folder)."""
        if ttl_s <= 0 or max_bytes <= 0:
            raise ValueError("the file store's ttl and size cap must be positive")
        self.ttl_s, self.max_bytes, self.clock = ttl_s, max_bytes, clock
        remove_abandoned(Path(root or tempfile.gettempdir()))
        # mode 0700; the process's id in the name tells a later store whether it is abandoned
        self.folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=root))
        self.files: dict[str, StoredFile] = {}
        self.used = 0  # bytes held and reserved
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    # -- storing and handing out -------------------------------------------------------
    def put(self, data: bytes, upload_name: str) -> str:
        """Keep ``data`` (a translation of the file a client called ``upload_name``); the
        answer is the name to download it by: a random token, then the upload's extension
        (``TOKEN.docx``). 503 when the store is full."""
        self.sweep()
        with self.lock:
            if self.used + len(data) > self.max_bytes:
                raise self._full()
            self.used += len(data)  # reserved before the write: two uploads cannot both pass the cap
        token = secrets.token_urlsafe(TOKEN_BYTES)
        path = self.folder / token
        try:
            write_bytes_atomic(path, data)
        except OSError as e:
            with self.lock:
                self.used -= len(data)
            raise APIError(503, "file_store_error", f"cannot store the translated file: {e.strerror or e}") from None
        with self.lock:
            self.files[token] = StoredFile(path, download_name(upload_name), len(data), self.clock() + self.ttl_s)
        suffix = os.path.splitext(upload_name or "")[1].lower()
        return token + (suffix if EXTENSION.fullmatch(suffix) else "")

    def check_room(self, upload_bytes: int) -> None:
        """503 now if the store holds files and a translation the size of the upload would
        not fit beside them: a full store is found before the file is translated (minutes of
        CPU for a large one), not after. Only a check (a translation's size is known once it
        is made, and an empty store lets ``put`` decide): ``put`` checks again."""
        self.sweep()
        with self.lock:
            if self.used and self.used + upload_bytes > self.max_bytes:
                raise self._full()

    def _full(self) -> APIError:
        return APIError(503, "file_store_full",
                        f"the server holds {self.max_bytes // (1 << 20)} MB of translated files already "
                        "(file_store_mb); download or wait for them to expire, then try again",
                        limit="file_store_mb", max=self.max_bytes / (1 << 20))

    def take(self, name: str) -> tuple[bytes, str] | None:
        """(the file's bytes, its download name), removing it from the store; None for a
        name the store did not hand out, or whose file expired or was downloaded."""
        token = name.split(".", 1)[0]
        if not TOKEN.fullmatch(token) or ("." in name and not EXTENSION.fullmatch(name[len(token):])):
            return None
        self.sweep()
        with self.lock:
            stored = self.files.pop(token, None)
        if stored is None:
            return None
        try:
            data = stored.path.read_bytes()
        except OSError:
            data = None
        self._remove(stored)
        return (data, stored.download_name) if data is not None else None

    # -- expiry and shutdown -----------------------------------------------------------
    def sweep(self) -> int:
        """Delete the files whose time is up; how many there were."""
        now = self.clock()
        with self.lock:
            expired = [t for t, f in self.files.items() if f.expires <= now]
            gone = [self.files.pop(t) for t in expired]
        for stored in gone:
            self._remove(stored)
        return len(gone)

    def start(self, every_s: float | None = None) -> None:
        """Sweep in a thread of its own, so expired files go even when nobody calls."""
        every_s = every_s or min(max(self.ttl_s / 4, 0.05), 30.0)

        def run() -> None:
            while not self._stop.wait(every_s):
                self.sweep()

        self._sweeper = threading.Thread(target=run, name="crossattn-file-store", daemon=True)
        self._sweeper.start()

    def close(self) -> None:
        """Stop sweeping and delete the folder with every file still in it."""
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(5.0)
        with self.lock:
            self.files.clear()
            self.used = 0
        shutil.rmtree(self.folder, ignore_errors=True)

    def snapshot(self) -> dict:
        """Files held and their bytes (for /health)."""
        with self.lock:
            return {"files": len(self.files), "bytes": self.used, "max_bytes": self.max_bytes}

    def _remove(self, stored: StoredFile) -> None:
        try:
            stored.path.unlink()
        except FileNotFoundError:
            pass
        with self.lock:
            self.used -= stored.size
