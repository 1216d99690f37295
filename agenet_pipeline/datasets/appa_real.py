"""APPA-REAL: `gt_avg_{train,valid,test}.csv` with the images in `train/`, `valid/`, `test/`.

Only the files the CSVs name are read, so the `*_face.jpg` pre-crops beside them are never counted.
"""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl

from agenet_pipeline.core.ages import age_problem
from agenet_pipeline.core.status import MALFORMED_LINE, MISSING_FILE, OK, OUTSIDE_ROOT, UNREADABLE
from agenet_pipeline.datasets.manifest import file_group, manifest_frame, outside_root, rejected, require_folder

DATASET = "appa_real"
SPLITS = ("train", "valid", "test")
COLUMNS = ("file_name", "num_ratings", "apparent_age_avg", "apparent_age_std", "real_age")
EXTRA_SCHEMA = {
    "appa_split": pl.String,
    "real_age": pl.Float64,
    "apparent_age_avg": pl.Float64,
    "apparent_age_std": pl.Float64,
    "num_ratings": pl.Int64,
}


def _number(text: str | None) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _label_row(root: Path, split: str, record: dict, age_label: str, where: str) -> dict:
    labels = {
        "appa_split": split,
        "real_age": _number(record["real_age"]),
        "apparent_age_avg": _number(record["apparent_age_avg"]),
        "apparent_age_std": _number(record["apparent_age_std"]),
        "num_ratings": int(n) if (n := _number(record["num_ratings"])) is not None and n.is_integer() else None,
    }
    path = root / split / record["file_name"]
    row = {"dataset": DATASET, "image_path": str(path), "age_source": age_label, **labels}
    if problem := outside_root(root, path):  # an absolute file_name, `..` in it, or a link out of the root
        return rejected(**row, status=OUTSIDE_ROOT, detail=f"{where}: {problem}")
    age = labels["real_age"] if age_label == "real" else labels["apparent_age_avg"]
    problem = age_problem(age)
    if problem:
        column = "real_age" if age_label == "real" else "apparent_age_avg"
        return rejected(**row, status=problem, detail=f"{where}: {column}={record[column]!r}")
    if not path.is_file():
        return rejected(**row, status=MISSING_FILE, detail=f"{where}: no file {path}")
    group, unreadable = file_group(path)
    if unreadable:
        return rejected(**row, status=UNREADABLE, detail=unreadable)
    return {**row, "age": age, "split_group": group, "status": OK, "detail": None}


def read_appa_real(root: str | Path, age_label: str = "real") -> pl.DataFrame:
    """Manifest of APPA-REAL; `age_label` picks the real age (default) or the mean apparent age."""
    if age_label not in ("real", "apparent"):
        raise ValueError(f"age_label must be 'real' or 'apparent', not {age_label!r}")
    root = require_folder(root, DATASET)
    rows = []
    for split in SPLITS:
        csv_path = root / f"gt_avg_{split}.csv"
        if not csv_path.is_file():
            raise FileNotFoundError(f"{DATASET}: label file {csv_path} is missing")
        with open(csv_path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{csv_path}: missing column(s) {', '.join(missing)}")
            for record in reader:
                where = f"{csv_path.name}:{reader.line_num}"
                if not record["file_name"]:
                    rows.append(
                        rejected(
                            dataset=DATASET,
                            image_path=None,
                            age_source=age_label,
                            appa_split=split,
                            status=MALFORMED_LINE,
                            detail=f"{where}: no file_name",
                        )
                    )
                    continue
                rows.append(_label_row(root, split, record, age_label, where))
    return manifest_frame(rows, EXTRA_SCHEMA)
