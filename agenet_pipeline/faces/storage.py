"""Files the face stage writes: Parquet written atomically, and a face table kept as resumable shard files."""

from __future__ import annotations

import os
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

FINGERPRINT_KEY = b"agenet.fingerprint"


_umask_lock = threading.Lock()


def _umask() -> int:
    """The process's file mode creation mask, read without changing it where Linux shows it (/proc, 4.7+); else
    set and restored under a lock (a file another thread creates meanwhile gets the strict mask 0o077)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    with _umask_lock:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: Path, suffix: str = ".tmp"):
    """A temporary path beside `path` that replaces it only when the block finishes without error.

    `suffix` is for writers that insist on a file extension (Keras wants `.keras`). The file gets the mode a plain
    `open(path, "w")` would give it (0o666 less the umask), not mkstemp's owner-only 0o600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_parquet(frame: pl.DataFrame, path: Path, fingerprint: str | None = None) -> Path:
    table = frame.to_arrow()
    if fingerprint is not None:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), FINGERPRINT_KEY: fingerprint.encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path


def fingerprint_of(path: Path) -> str | None:
    """The fingerprint a shard was written with, or None when the file is absent or unreadable."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, ValueError):
        return None
    value = metadata.get(FINGERPRINT_KEY)
    return value.decode() if value else None


def shard_path(folder: Path, index: int) -> Path:
    return folder / f"shard-{index:05d}.parquet"


def shard_paths(folder: Path) -> list[Path]:
    return sorted(folder.glob("shard-*.parquet"))


def scan_faces(folder: Path, columns: list[str] | None = None) -> pl.LazyFrame:
    """The face table of one dataset, lazily, without loading the crops unless asked for."""
    paths = shard_paths(folder)
    if not paths:
        raise FileNotFoundError(f"no face shards in {folder}: materialise the dataset's faces first")
    frame = pl.scan_parquet(paths)
    return frame.select(columns) if columns else frame
