"""A face table kept as resumable shard files, each stamped with the fingerprint of what it was made from.

Each shard has a checksum file beside it (`shard-00000.parquet.sha256`, in `sha256sum` format), written after
the shard: the fingerprint in a shard's footer says what the shard was made from, the checksum that its bytes
are still the ones written, so a shard damaged anywhere is rebuilt rather than reused.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from agenet_pipeline.core.files import write_bytes, write_parquet
from agenet_pipeline.faces.settings import FaceSettings

FINGERPRINT_KEY = b"agenet.fingerprint"
SETTINGS_FILE = "face_settings.json"
CHECKSUM_SUFFIX = ".sha256"


class CorruptShardError(RuntimeError):
    """A face shard whose bytes are not the ones written; the message starts with the shard's path."""


def write_shard(frame: pl.DataFrame, path: Path, fingerprint: str) -> Path:
    """One shard of a face table, stamped with the fingerprint of the rows and settings it was made from, and
    its checksum beside it."""
    write_parquet(frame, path, {FINGERPRINT_KEY: fingerprint.encode()})
    write_checksum(path)
    return path


def fingerprint_of(path: Path) -> str | None:
    """The fingerprint a shard was written with, or None when the file is absent or unreadable."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, ValueError):
        return None
    value = metadata.get(FINGERPRINT_KEY)
    return value.decode() if value else None


def checksum_path(path: Path) -> Path:
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def _sha256(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def write_checksum(path: Path) -> Path:
    """Record the SHA-256 of the file at `path` beside it; written after the file, so a crash leaves it stale."""
    return write_bytes(checksum_path(path), f"{_sha256(path)}  {path.name}\n")


def checksum_problem(path: Path) -> str | None:
    """Why the bytes of the shard at `path` cannot be trusted (no checksum recorded, or a different one), or None."""
    try:
        recorded = checksum_path(path).read_text().split()[0]
    except (OSError, IndexError):
        return f"no checksum recorded in {checksum_path(path).name}"
    try:
        actual = _sha256(path)
    except OSError as error:
        return str(error)
    if actual != recorded:
        return f"its SHA-256 {actual[:16]}… differs from the {recorded[:16]}… recorded when it was written"
    return None


def _damage(path: Path) -> str | None:
    """What is wrong with a shard: its checksum where one was recorded, else whether it reads whole."""
    if checksum_path(path).exists():
        return checksum_problem(path)
    try:
        pq.read_table(path)
    except Exception as error:  # noqa: BLE001 - any failure to read the file is its damage
        return f"{type(error).__name__}: {error}"
    return None


def _corrupt(path: Path, problem: str) -> CorruptShardError:
    return CorruptShardError(f"{path}: {problem}; materialise the dataset's faces again to rebuild it")


def verify_shard(path: Path) -> None:
    """Raise CorruptShardError if the shard's bytes are not those of the checksum recorded when it was written."""
    if checksum_path(path).exists() and (problem := checksum_problem(path)):
        raise _corrupt(path, problem)


@contextmanager
def naming_damaged_shards(*folders: Path):
    """Raise an error from reading a damaged face shard of `folders` in the block as a CorruptShardError naming it.

    Costs nothing unless the block fails; then the shards are checked one by one, and an error that no damaged
    shard explains goes on unchanged, with a note naming the folders.
    """
    try:
        yield
    except CorruptShardError:
        raise
    except Exception as error:
        for path in (path for folder in folders for path in shard_paths(folder)):
            if problem := _damage(path):
                raise _corrupt(path, f"{problem} ({type(error).__name__}: {error})") from error
        error.add_note(f"while reading the face shards in {', '.join(str(folder) for folder in folders)}")
        raise


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


def read_faces(folder: Path, columns: list[str] | None = None, rows: pl.Series | None = None) -> pl.DataFrame:
    """The face table of one dataset (only `rows`, when given), read whole; an error from a damaged shard names it."""
    with naming_damaged_shards(folder):
        frame = scan_faces(folder, columns)
        return (frame.filter(pl.col("row").is_in(rows)) if rows is not None else frame).collect()


def write_face_settings(folder: Path, settings: FaceSettings) -> Path:
    """The settings the shards of `folder` were made with, beside them: training records them, and packages them
    with the served model, so that a served crop is made as the trained ones were."""
    return write_bytes(folder / SETTINGS_FILE, json.dumps(asdict(settings), indent=2))


def face_settings_of(folder: Path) -> FaceSettings | None:
    """The settings the shards of `folder` were made with (None for shards written before they were recorded)."""
    path = folder / SETTINGS_FILE
    return FaceSettings.recorded(json.loads(path.read_text())) if path.is_file() else None
