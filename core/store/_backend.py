"""Where a store lives: one interface (``Backend``) over a local folder or an fsspec URL.

The backend owns the manifest (the single source of truth for what is committed, checksummed,
replaced atomically: ``os.replace`` after an fsync locally, a single PUT on object stores), the
writer lock and the store's folders. The writer lock is a ``filelock`` file: inside the store for
local paths, in a local lock directory for URLs, so writers on *different machines* sharing one
object-store URL are not coordinated. Local stores also keep a commit counter beside the
manifest (``CommitCounter``) so that readers notice commits without a system call.
"""
from __future__ import annotations

import abc
import contextlib
import hashlib
import json
import mmap
import shutil
import os
import signal
import tempfile
import time
import uuid
from pathlib import Path

import filelock

from core.errors import StoreCorruptionError, StoreError, StoreVersionError
from core.store._format import COMMIT_COUNTER_KEY, FORMAT_VERSION, MANIFEST_KEY

CRASH_ENV = "HINDSIGHT_STORE_CRASH_AT"
LOCK_TIMEOUT_S = 120.0


def crash_point(step: str) -> None:
    """Test hook: SIGKILL this process at the named commit step when the env var names it."""
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


class CommitCounter:
    """A shared 8-byte counter beside the manifest, read and written through a memory map.

    A writer holding the writer lock makes it odd just before it replaces the manifest and
    even just after, so every commit changes it. A reader that finds the even value it read
    before its last manifest check knows that nothing was committed since, at the cost of one
    memory read (a ``stat`` of the manifest costs 3-5 us here). Odd means a commit is in
    flight or its writer was killed mid-commit: readers then check the manifest itself, until
    the next commit makes the counter even again.
    """

    def __init__(self, path: str, writable: bool):
        self._map = self._view = None  # the view keeps the map open; both close with us
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT if writable else os.O_RDONLY, 0o644)
        except FileNotFoundError:  # no counter yet (a store last written by an older Hindsight)
            return
        try:
            if writable and os.fstat(fd).st_size < 8:
                os.ftruncate(fd, 8)  # zeros; never resets a counter another writer created
            if os.fstat(fd).st_size >= 8:
                self._map = mmap.mmap(fd, 8, access=mmap.ACCESS_WRITE if writable
                                      else mmap.ACCESS_READ)
                self._view = memoryview(self._map).cast("Q")
        finally:
            os.close(fd)

    @property
    def present(self) -> bool:
        return self._view is not None

    def value(self) -> int | None:
        """The counter now, None without a counter file."""
        view = self._view
        return None if view is None else view[0]

    def begin(self) -> None:
        """Mark a commit in flight (odd); call with the writer lock held."""
        self._view[0] = (self._view[0] + 1) | 1

    def end(self) -> None:
        """Mark the commit done (even, and different from every earlier value)."""
        self._view[0] = self._view[0] + 1


class Backend(abc.ABC):
    """A store's address: its zarr store object, manifest I/O, writer lock and folders.

    ``open_backend`` picks the implementation; nothing else in the store branches on where it
    lives. A handle that cannot watch a commit counter re-reads the manifest at most every
    ``refresh_interval`` seconds.
    """

    refresh_interval = 0.0

    def __init__(self, url: str, writable: bool, lock_path: str):
        self.url, self.writable = url, writable
        self._lock_path = lock_path
        self._lock = filelock.FileLock(lock_path, timeout=LOCK_TIMEOUT_S)

    # -- each backend implements these ---------------------------------------------------------
    @abc.abstractmethod
    def zarr_store(self):
        """A zarr v3 store object for this location (read-only unless writable)."""

    @abc.abstractmethod
    def _read_raw(self) -> tuple[bytes | None, object]:
        """(the manifest's bytes or None when absent, its change token)."""

    @abc.abstractmethod
    def manifest_token(self) -> object:
        """Cheap change detector: a new value whenever the manifest was replaced."""

    @abc.abstractmethod
    def _replace_manifest(self, raw: bytes) -> None:
        """Put ``raw`` in place of the manifest atomically."""

    @abc.abstractmethod
    def list_dir(self, relative: str) -> list[str]:
        """Sub-folder names directly under ``relative`` (empty when missing)."""

    @abc.abstractmethod
    def remove_tree(self, relative: str) -> None:
        """Delete a folder and everything below it (a segment no manifest refers to)."""

    @abc.abstractmethod
    def entries(self) -> list[str]:
        """Names directly at the store's root (empty when it does not exist)."""

    # -- shared -------------------------------------------------------------------------------
    def commit_counter(self) -> CommitCounter | None:
        return None

    def modified_age_s(self, relative: str) -> float | None:
        """Seconds since ``relative`` was last modified (None when unknown)."""
        return None

    def clean_temp_manifests(self, older_than_s: float) -> int:
        """Remove manifest temp files left by killed writers; returns how many."""
        return 0

    def read_manifest(self) -> tuple[dict | None, object]:
        """(manifest dict or None when absent, its change token); damage raises."""
        raw, token = self._read_raw()
        return (None, None) if raw is None else (parse_manifest(raw, self.url), token)

    def write_manifest(self, doc: dict) -> None:
        """Replace the manifest atomically (the commit point of every write), checksummed."""
        self._replace_manifest(manifest_bytes(doc))

    def current_manifest(self) -> dict:
        """The committed manifest now; a clear error when the store is gone or too new."""
        doc, _ = self.read_manifest()
        if doc is None:
            raise StoreError(f"The manifest of {self.url!r} disappeared; the store was removed.")
        check_version(doc.get("format_version"), self.url)
        return doc

    def commit(self, doc: dict) -> None:
        """Write ``doc`` as the next manifest version (call with the writer lock held)."""
        doc["version"] = int(doc.get("version", 0)) + 1
        doc["format_version"] = FORMAT_VERSION  # older readers must refuse what they can't honour
        self.write_manifest(doc)
        crash_point("manifest_replaced")

    @contextlib.contextmanager
    def lock(self):
        """Hold the inter-process writer lock (re-entrant); a clear error if it never frees."""
        Path(self._lock_path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise StoreError(f"Could not take the writer lock {self._lock_path} of {self.url!r} "
                             f"within {LOCK_TIMEOUT_S:.0f} s: another writer holds it. Retry "
                             "later, or stop the stuck writer.") from None
        try:
            yield
        finally:
            self._lock.release()


class LocalBackend(Backend):
    """A store in a local folder (a path or a ``file://`` URL)."""

    def __init__(self, url: str, writable: bool, lock_dir: str | None):
        path = url[len("file://"):] if url.startswith("file://") else url
        self.root = Path(path).expanduser().absolute()
        super().__init__(url, writable, str(self.root / ".lock") if lock_dir is None
                         else _lock_file(lock_dir, url))
        self._manifest_path = str(self.root / MANIFEST_KEY)
        self._counter_path = str(self.root / COMMIT_COUNTER_KEY)
        self._counter: CommitCounter | None = None
        self._counter_retry_at = 0.0

    def zarr_store(self):
        from zarr.storage import LocalStore

        if self.writable:
            self.root.mkdir(parents=True, exist_ok=True)
        return LocalStore(self.root, read_only=not self.writable)

    def manifest_token(self) -> object:
        try:
            st = os.stat(self._manifest_path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _read_raw(self) -> tuple[bytes | None, object]:
        try:
            with open(self._manifest_path, "rb") as fh:
                st = os.fstat(fh.fileno())
                return fh.read(), (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            return None, None

    def commit_counter(self) -> CommitCounter | None:
        """The commit counter, opened on first use; where the file is missing (a store last
        written by an older Hindsight) opening is retried at most once a second."""
        counter = self._counter
        if counter is None or not counter.present and time.monotonic() >= self._counter_retry_at:
            counter = self._counter = CommitCounter(self._counter_path, self.writable)
            self._counter_retry_at = time.monotonic() + 1.0
        return counter

    def _replace_manifest(self, raw: bytes) -> None:
        tmp = self.root / f".{MANIFEST_KEY}.{uuid.uuid4().hex}.tmp"
        counter = self.commit_counter()
        try:
            with open(tmp, "wb") as fh:
                fh.write(raw)
                fh.flush()
                os.fsync(fh.fileno())
            crash_point("manifest_tmp")
            counter.begin()
            os.replace(tmp, self._manifest_path)
            crash_point("manifest_renamed")
            counter.end()
        finally:
            if tmp.exists():
                tmp.unlink()

    def list_dir(self, relative: str) -> list[str]:
        folder = self.root / relative
        names = os.listdir(folder) if folder.is_dir() else []
        return sorted(n for n in names if (folder / n).is_dir())

    def remove_tree(self, relative: str) -> None:
        shutil.rmtree(self.root / relative, ignore_errors=True)

    def entries(self) -> list[str]:
        return sorted(os.listdir(self.root)) if self.root.is_dir() else []

    def modified_age_s(self, relative: str) -> float | None:
        try:
            return time.time() - os.stat(self.root / relative).st_mtime
        except FileNotFoundError:
            return None

    def clean_temp_manifests(self, older_than_s: float) -> int:
        removed = 0
        for name in self.entries():
            if name.startswith(f".{MANIFEST_KEY}.") and name.endswith(".tmp"):
                path = self.root / name
                if time.time() - path.stat().st_mtime > older_than_s:
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed


class FsspecBackend(Backend):
    """A store behind an fsspec URL (``s3://``, ``memory://``, ...): one PUT replaces the
    manifest; the writer lock is a local file, so it coordinates writers of one machine only."""

    refresh_interval = 1.0

    def __init__(self, url: str, writable: bool, lock_dir: str | None):
        import fsspec

        super().__init__(url, writable, _lock_file(lock_dir, url))
        self.fs, root = fsspec.core.url_to_fs(url)
        self.fs_root = root.rstrip("/")
        if url.startswith("memory://"):
            self.refresh_interval = 0.0

    def zarr_store(self):
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(self.url, read_only=not self.writable)

    def manifest_token(self) -> object:
        return self._read_raw()[1]

    def _read_raw(self) -> tuple[bytes | None, object]:
        try:
            raw = self.fs.cat_file(f"{self.fs_root}/{MANIFEST_KEY}")
        except FileNotFoundError:
            return None, None
        return raw, raw

    def _replace_manifest(self, raw: bytes) -> None:
        crash_point("manifest_tmp")
        self.fs.pipe_file(f"{self.fs_root}/{MANIFEST_KEY}", raw)

    def list_dir(self, relative: str) -> list[str]:
        try:
            entries = self.fs.ls(f"{self.fs_root}/{relative}", detail=True)
        except FileNotFoundError:
            return []
        return sorted(e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries
                      if e.get("type") == "directory")

    def remove_tree(self, relative: str) -> None:
        try:
            self.fs.rm(f"{self.fs_root}/{relative}", recursive=True)
        except FileNotFoundError:
            pass

    def entries(self) -> list[str]:
        try:
            return sorted(e.rstrip("/").rsplit("/", 1)[-1]
                          for e in self.fs.ls(self.fs_root, detail=False))
        except FileNotFoundError:
            return []


def open_backend(url: str, *, writable: bool, lock_dir: str | None = None) -> Backend:
    """The backend of a folder path, a ``file://`` URL or any installed fsspec protocol."""
    if "://" not in url or url.startswith("file://"):
        return LocalBackend(url, writable, lock_dir)
    import fsspec

    scheme = url.split("://", 1)[0]
    if scheme not in fsspec.available_protocols():
        raise StoreError(f"Unknown store URL scheme {scheme!r} in {url!r}. Use a folder path, "
                         "file:///path, memory://name, or an fsspec URL such as "
                         "s3://bucket/path (with s3fs installed).")
    try:
        return FsspecBackend(url, writable, lock_dir)
    except ImportError as exc:
        raise StoreError(f"The store URL {url!r} needs a package that is not installed "
                         f"({exc}).") from None


def _lock_file(lock_dir: str | None, url: str) -> str:
    folder = Path(lock_dir or Path(tempfile.gettempdir()) / "hindsight-store-locks")
    digest = hashlib.blake2b(url.encode(), digest_size=8).hexdigest()
    return str(folder / f"{digest}.lock")


# ---------------------------------------------------------------------------------- manifest
def manifest_checksum(doc: dict) -> str:
    """The checksum a manifest carries: the sha256 (hex) of its JSON without the checksum,
    keys sorted, no spaces, ASCII only."""
    body = {k: v for k, v in doc.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def manifest_bytes(doc: dict) -> bytes:
    """A manifest as written: its JSON with its checksum."""
    doc["checksum"] = manifest_checksum(doc)
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode()


def parse_manifest(raw: bytes, url: str) -> dict:
    """A manifest's dict, checked: valid JSON, a segment list, and (format 3 on) its checksum."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise StoreCorruptionError(
            f"The manifest of the backtest store {url!r} is not valid JSON; the store's list of "
            "committed segments is damaged. Restore manifest.json from a backup."
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("segments"), list):
        raise StoreCorruptionError(f"The manifest of {url!r} has no segment list; restore it.")
    version = doc.get("format_version")  # a newer format is refused by check_version
    if isinstance(version, int) and 3 <= version <= FORMAT_VERSION and \
            doc.get("checksum") != manifest_checksum(doc):
        raise StoreCorruptionError(
            f"The manifest of the backtest store {url!r} fails its checksum: it was edited or "
            "damaged, so its ids cannot be trusted. Restore manifest.json from a backup.")
    return doc


def check_version(version, url: str) -> None:
    """Refuse a store without a format version, or written by a newer Hindsight."""
    if not isinstance(version, int):
        raise StoreCorruptionError(f"The backtest store {url!r} records no format version; its "
                                   "metadata is damaged.")
    if version > FORMAT_VERSION:
        raise StoreVersionError(f"The backtest store {url!r} was written with store format "
                                f"version {version}; this Hindsight reads format version "
                                f"{FORMAT_VERSION} and older. Upgrade Hindsight to open it.")


def empty_manifest() -> dict:
    return {"format_version": FORMAT_VERSION, "version": 0, "next_bid": 1, "segments": [],
            "tombstones": [], "notes": {}, "retired": []}


__all__ = ["Backend", "CommitCounter", "open_backend", "crash_point", "empty_manifest",
           "CRASH_ENV"]
