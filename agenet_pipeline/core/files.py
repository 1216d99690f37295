"""Files written atomically: a temporary file beside the target, renamed over it only when complete."""

from __future__ import annotations

import os
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Parquet is imported where it is written: training imports this module where polars is absent
    import polars as pl

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


def write_bytes(path: Path, content: bytes | str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def write_parquet(frame: pl.DataFrame, path: Path, metadata: dict[bytes, bytes] | None = None) -> Path:
    """`frame` as zstd Parquet, with `metadata` added to the schema's key-value metadata."""
    import pyarrow.parquet as pq

    table = frame.to_arrow()
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path
