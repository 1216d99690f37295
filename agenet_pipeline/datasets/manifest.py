"""The manifest table: one row per source image (or per label record), with its status."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from agenet_pipeline.core.status import OUTSIDE_ROOT

MANIFEST_SCHEMA = {
    "dataset": pl.String,
    "image_path": pl.String,
    "age": pl.Float64,
    "age_source": pl.String,
    "split_group": pl.String,
    "status": pl.String,
    "detail": pl.String,
}


def manifest_frame(rows: list[dict], extra_schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Rows (dicts) as a manifest with the common columns first, then the dataset's own columns."""
    schema = {**MANIFEST_SCHEMA, **extra_schema}
    return pl.from_dicts(rows, schema=schema)


def number_rows(manifest: pl.DataFrame) -> pl.DataFrame:
    """The manifest with `row`, its position, as the first column: the key that follows a row to its face."""
    return manifest.drop("row", strict=False).with_row_index("row").with_columns(pl.col("row").cast(pl.Int64))


def rejected(**fields) -> dict:
    """A row kept in the manifest with the reason it cannot be used."""
    return {"age": None, **fields}


def outside_root(root: Path, path: Path) -> str | None:
    """Why reading `path` would leave the dataset at `root`, or None when it stays inside.

    Both are resolved, symbolic links included, so an absolute path, `..` segments and a link that points out of
    the root are all caught; check before reading (or hashing) the file. A link loop resolves nowhere and is
    left to the read, which fails on it.
    """
    try:
        real, real_root = path.resolve(), root.resolve()
    except (OSError, RuntimeError, ValueError):  # a symbolic-link loop, a NUL in the name: left to the read
        return None
    if real.is_relative_to(real_root):
        return None
    return f"{path} leads to {real}, outside the dataset root {real_root}"


def file_group(path: Path) -> tuple[str | None, str | None]:
    """(split group from the file's content hash, None) or (None, why the file cannot be read)."""
    try:
        with open(path, "rb") as f:
            return "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()[:32], None
    except OSError as error:
        return None, f"{type(error).__name__}: {error}"


def walk_files(root: Path, suffixes: tuple[str, ...]) -> Iterator[Path]:
    """Files under root whose names end with one of the suffixes, in a stable order.

    Symbolic links to folders are not followed, so a link loop cannot make the walk endless.
    """
    for folder, subfolders, names in os.walk(root, followlinks=False):
        subfolders.sort()
        for name in sorted(names):
            if name.lower().endswith(suffixes):
                yield Path(folder) / name


def photos_in(root: Path, dataset: str, suffixes: tuple[str, ...], rows: list[dict]) -> Iterator[tuple[Path, dict]]:
    """The files under `root` whose labels are in their names, each with the first fields of its manifest row; a
    file that leads outside the root (a symbolic link to elsewhere) is added to `rows` as an `outside_root` row
    instead, and never read."""
    for path in walk_files(root, suffixes):
        row = {"dataset": dataset, "image_path": str(path), "age_source": "real"}
        if problem := outside_root(root, path):
            rows.append(rejected(**row, status=OUTSIDE_ROOT, detail=problem))
        else:
            yield path, row


def require_folder(root: str | Path, dataset: str) -> Path:
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise FileNotFoundError(f"{dataset}: dataset root {root} is not a folder")
    return root
