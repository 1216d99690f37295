"""Adience: five tab-separated fold files, with the images at
`faces/<user_id>/coarse_tilt_aligned_face.<face_id>.<original_image>`.

Ages are ranges such as `(25, 32)` (the row's age is the range's middle, `age_low`/`age_high` keep the range),
single numbers, or `None`. Listed faces whose file is absent become `missing_file` rows, so they are counted.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from agenet_pipeline.core.ages import age_problem
from agenet_pipeline.core.status import MALFORMED_LABEL, MALFORMED_LINE, MISSING_FILE, MISSING_LABEL, OK, OUTSIDE_ROOT
from agenet_pipeline.datasets.manifest import manifest_frame, outside_root, rejected, require_folder

DATASET = "adience"
FOLDS = 5
HEADER = (
    "user_id",
    "original_image",
    "face_id",
    "age",
    "gender",
    "x",
    "y",
    "dx",
    "dy",
    "tilt_ang",
    "fiducial_yaw_angle",
    "fiducial_score",
)
EXTRA_SCHEMA = {
    "fold": pl.Int64,
    "user_id": pl.String,
    "face_id": pl.String,
    "age_low": pl.Float64,
    "age_high": pl.Float64,
    "gender": pl.String,
}
_RANGE = re.compile(r"^\(\s*(\d+(?:\.\d+)?)\s*,\s*(\d+(?:\.\d+)?)\s*\)$")
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")


def parse_age(text: str) -> tuple[float, float] | None:
    """(low, high) of an Adience age field; None for `None`, empty or anything else unparseable."""
    text = text.strip()
    if match := _RANGE.match(text):
        low, high = float(match[1]), float(match[2])
        return (low, high) if low <= high else None
    if _NUMBER.match(text):
        return float(text), float(text)
    return None


def image_path(root: Path, user_id: str, face_id: str, original_image: str) -> Path:
    return root / "faces" / user_id / f"coarse_tilt_aligned_face.{face_id}.{original_image}"


def _row(root: Path, fold: int, fields: list[str], where: str) -> dict:
    if len(fields) != len(HEADER) or not all(fields[:3]):
        return rejected(
            dataset=DATASET,
            image_path=None,
            age_source="range",
            fold=fold,
            status=MALFORMED_LINE,
            detail=f"{where}: expected {len(HEADER)} tab-separated fields, found {len(fields)}",
        )
    record = dict(zip(HEADER, fields))
    path = image_path(root, record["user_id"], record["face_id"], record["original_image"])
    row = {
        "dataset": DATASET,
        "image_path": str(path),
        "age_source": "range",
        "split_group": f"adience:{record['user_id']}",
        "fold": fold,
        "user_id": record["user_id"],
        "face_id": record["face_id"],
        "gender": {"m": "male", "f": "female"}.get(record["gender"]),
    }
    if problem := outside_root(root, path):  # an absolute user_id, or `..` in a field
        return rejected(**row, status=OUTSIDE_ROOT, detail=f"{where}: {problem}")
    age_range = parse_age(record["age"])
    if age_range is None:
        status = MISSING_LABEL if record["age"].strip() in ("", "None") else MALFORMED_LABEL
        return rejected(**row, status=status, detail=f"{where}: age {record['age']!r}")
    low, high = age_range
    age = (low + high) / 2
    row |= {"age_low": low, "age_high": high, "age_source": "range" if low < high else "real"}
    if problem := age_problem(age):
        return rejected(**row, status=problem, detail=f"{where}: age {record['age']!r}")
    if not path.is_file():
        return rejected(**row, status=MISSING_FILE, detail=f"{where}: no file {path}")
    return {**row, "age": age, "status": OK, "detail": None}


def read_adience(root: str | Path) -> pl.DataFrame:
    root = require_folder(root, DATASET)
    rows = []
    for fold in range(FOLDS):
        fold_path = root / f"fold_{fold}_data.txt"
        if not fold_path.is_file():
            raise FileNotFoundError(f"{DATASET}: fold file {fold_path} is missing")
        lines = fold_path.read_text(encoding="utf-8", errors="replace").splitlines()
        if not lines or tuple(lines[0].split("\t")) != HEADER:
            raise ValueError(f"{fold_path}: first line is not the Adience header ({' '.join(HEADER)})")
        for number, line in enumerate(lines[1:], start=2):
            if line.strip():
                rows.append(_row(root, fold, line.split("\t"), f"{fold_path.name}:{number}"))
    return manifest_frame(rows, EXTRA_SCHEMA)
