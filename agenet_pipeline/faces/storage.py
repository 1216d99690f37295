"""A face table kept as resumable shard files, each stamped with the fingerprint of what it was made from."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from agenet_pipeline.core.files import write_parquet

FINGERPRINT_KEY = b"agenet.fingerprint"


def write_shard(frame: pl.DataFrame, path: Path, fingerprint: str) -> Path:
    """One shard of a face table, stamped with the fingerprint of the rows and settings it was made from."""
    return write_parquet(frame, path, {FINGERPRINT_KEY: fingerprint.encode()})


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
