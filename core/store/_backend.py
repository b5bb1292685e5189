"""Where a store lives: local directory or fsspec URL, its manifest file and its writer lock.

The manifest is the single source of truth for what is committed. Locally it is replaced with
``os.replace`` (atomic on POSIX) after an fsync; on object stores a single PUT replaces it
atomically. The writer lock is a ``filelock`` file: inside the store for local paths, in a local
lock directory for URLs (writers on *different machines* must coordinate themselves). Local
stores also keep a commit counter beside the manifest (``CommitCounter``) so that readers notice
commits without a system call.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import signal
import tempfile
import time
import uuid
from pathlib import Path

import filelock

from core.errors import StoreCorruptionError, StoreError
from core.store._format import COMMIT_COUNTER_KEY, MANIFEST_KEY

CRASH_ENV = "HINDSIGHT_STORE_CRASH_AT"
LOCK_TIMEOUT_S = 120.0


def crash_point(step: str) -> None:
    """Test hook: SIGKILL this process at the named commit step when the env var names it."""
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def is_local_url(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


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


class Location:
    """A store's address: the zarr store object, manifest I/O and the writer lock."""

    def __init__(self, url: str | os.PathLike, *, writable: bool, lock_dir: str | None = None):
        self.url = os.fspath(url)
        self.writable = writable
        self.is_local = is_local_url(self.url)
        if self.is_local:
            path = self.url[len("file://"):] if self.url.startswith("file://") else self.url
            self.root = Path(path).expanduser().absolute()
            self.fs = None
            self.fs_root = str(self.root)
            self._manifest_path = os.path.join(self.fs_root, MANIFEST_KEY)
            self._counter_path = os.path.join(self.fs_root, COMMIT_COUNTER_KEY)
        else:
            import fsspec

            self.root = None
            self.fs, self.fs_root = fsspec.core.url_to_fs(self.url)
            self.fs_root = self.fs_root.rstrip("/")
        self._lock_path = self._choose_lock_path(lock_dir)
        self._lock = filelock.FileLock(self._lock_path, timeout=LOCK_TIMEOUT_S)
        self._counter: CommitCounter | None = None
        self._counter_retry_at = 0.0

    # -- zarr ---------------------------------------------------------------------------------
    def zarr_store(self):
        """A zarr v3 store object for this location (read-only unless writable)."""
        from zarr.storage import FsspecStore, LocalStore

        if self.is_local:
            if self.writable:
                self.root.mkdir(parents=True, exist_ok=True)
            return LocalStore(self.root, read_only=not self.writable)
        return FsspecStore.from_url(self.url, read_only=not self.writable)

    # -- manifest -----------------------------------------------------------------------------
    def manifest_token(self) -> object:
        """Cheap change detector: a new value whenever the manifest was replaced."""
        if self.is_local:
            try:
                st = os.stat(self._manifest_path)
            except FileNotFoundError:
                return None
            return (st.st_ino, st.st_mtime_ns, st.st_size)
        try:
            return self.fs.cat_file(f"{self.fs_root}/{MANIFEST_KEY}")
        except FileNotFoundError:
            return None

    def commit_counter(self) -> CommitCounter | None:
        """The local store's commit counter, opened on first use (None for remote stores).

        Where the file is missing (a store last written by an older Hindsight), opening is
        retried at most once a second: a failed open costs more than the check it replaces.
        """
        if not self.is_local:
            return None
        counter = self._counter
        if counter is None or not counter.present and time.monotonic() >= self._counter_retry_at:
            counter = self._counter = CommitCounter(self._counter_path, self.writable)
            self._counter_retry_at = time.monotonic() + 1.0
        return counter

    def read_manifest(self) -> tuple[dict | None, object]:
        """(manifest dict or None when absent, its change token)."""
        if self.is_local:
            try:
                with open(self.root / MANIFEST_KEY, "rb") as fh:
                    st = os.fstat(fh.fileno())
                    raw = fh.read()
            except FileNotFoundError:
                return None, None
            token = (st.st_ino, st.st_mtime_ns, st.st_size)
        else:
            token = self.manifest_token()
            if token is None:
                return None, None
            raw = token
        return _parse_manifest(raw, self.url), token

    def write_manifest(self, doc: dict) -> None:
        """Replace the manifest atomically (the commit point of every write)."""
        raw = json.dumps(doc, separators=(",", ":")).encode()
        if not self.is_local:
            crash_point("manifest_tmp")
            self.fs.pipe_file(f"{self.fs_root}/{MANIFEST_KEY}", raw)
            return
        tmp = self.root / f".{MANIFEST_KEY}.{uuid.uuid4().hex}.tmp"
        counter = self.commit_counter()
        try:
            with open(tmp, "wb") as fh:
                fh.write(raw)
                fh.flush()
                os.fsync(fh.fileno())
            crash_point("manifest_tmp")
            counter.begin()
            os.replace(tmp, self.root / MANIFEST_KEY)
            crash_point("manifest_renamed")
            counter.end()
        finally:
            if tmp.exists():
                tmp.unlink()

    # -- lock ---------------------------------------------------------------------------------
    def _choose_lock_path(self, lock_dir: str | None) -> str:
        if lock_dir is None and self.is_local:
            return str(self.root / ".lock")
        folder = Path(lock_dir or Path(tempfile.gettempdir()) / "hindsight-store-locks")
        digest = hashlib.blake2b(self.url.encode(), digest_size=8).hexdigest()
        return str(folder / f"{digest}.lock")

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

    # -- files --------------------------------------------------------------------------------
    def list_dir(self, relative: str) -> list[str]:
        """Sub-folder names directly under ``relative`` (empty when missing)."""
        if self.is_local:
            folder = self.root / relative
            names = os.listdir(folder) if folder.is_dir() else []
            return sorted(n for n in names if (folder / n).is_dir())
        try:
            entries = self.fs.ls(f"{self.fs_root}/{relative}", detail=False)
        except FileNotFoundError:
            return []
        return sorted(entry.rstrip("/").rsplit("/", 1)[-1] for entry in entries
                      if not entry.endswith("zarr.json"))

    def remove_tree(self, relative: str) -> None:
        """Delete a folder and everything below it (a segment no manifest refers to)."""
        if self.is_local:
            import shutil

            shutil.rmtree(self.root / relative, ignore_errors=True)
        else:
            try:
                self.fs.rm(f"{self.fs_root}/{relative}", recursive=True)
            except FileNotFoundError:
                pass

    def modified_age_s(self, relative: str) -> float | None:
        """Seconds since ``relative`` was last modified (None when unknown)."""
        if self.is_local:
            try:
                return time.time() - os.stat(self.root / relative).st_mtime
            except FileNotFoundError:
                return None
        return None

    def clean_temp_manifests(self, older_than_s: float) -> int:
        """Remove manifest temp files left by killed writers; returns how many."""
        if not self.is_local or not self.root.is_dir():
            return 0
        removed = 0
        for name in os.listdir(self.root):
            if name.startswith(f".{MANIFEST_KEY}.") and name.endswith(".tmp"):
                path = self.root / name
                if time.time() - path.stat().st_mtime > older_than_s:
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed


def _parse_manifest(raw: bytes, url: str) -> dict:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise StoreCorruptionError(
            f"The manifest of the backtest store {url!r} is not valid JSON; the store's list of "
            "committed segments is damaged. Restore manifest.json from a backup."
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("segments"), list):
        raise StoreCorruptionError(f"The manifest of {url!r} has no segment list; restore it.")
    return doc


def empty_manifest(format_version: int) -> dict:
    return {"format_version": format_version, "version": 0, "next_bid": 1, "segments": [],
            "tombstones": [], "notes": {}}


__all__ = ["CommitCounter", "Location", "crash_point", "empty_manifest", "CRASH_ENV"]
