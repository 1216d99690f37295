"""A labels table: any dataset (AgeDB, MegaAge, one's own photos) brought as a CSV with the columns `path,age` and,
optionally, `person` and `gender`; other columns are ignored.

`read_labels_table` takes the CSV itself, or a folder, which means the `labels.csv` in it. The CSV's folder is the
dataset's root: paths are relative to it, and one that leads out of it (absolute, `..`, a symbolic link) is an
`outside_root` row, never read. Ages are real ages in years. The file is UTF-8, with or without a byte-order mark,
LF or CRLF line ends, quoted fields as any CSV writer quotes them; lines of nothing but commas and spaces are skipped.

Every other line is a row, usable or with its reason: `malformed_line` (an empty path, or more or fewer fields
than the header), `malformed_label` (an age that is not a number), `missing_label`, `label_out_of_range`,
`missing_file`, `unreadable`, and `duplicate_row` for a second row naming a file already listed under any name
(the first row is kept, whatever its status). The split group is `labels_table:<person>` when the row names a
person, else the file's content hash.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import polars as pl

from agenet_pipeline.core.ages import age_problem
from agenet_pipeline.core.status import (
    DUPLICATE_ROW,
    MALFORMED_LABEL,
    MALFORMED_LINE,
    MISSING_FILE,
    MISSING_LABEL,
    OK,
    OUTSIDE_ROOT,
    UNREADABLE,
)
from agenet_pipeline.datasets.manifest import file_group, manifest_frame, outside_root, rejected

DATASET = "labels_table"
FILE_NAME = "labels.csv"  # the table read when a folder is given
REQUIRED_COLUMNS = ("path", "age")
OPTIONAL_COLUMNS = ("person", "gender")
EXTRA_SCHEMA = {"person": pl.String, "gender": pl.String}
GENDERS = {"m": "male", "male": "male", "f": "female", "female": "female"}  # other values are kept as written


def labels_file(csv_path_or_folder: str | Path) -> Path:
    """The CSV to read: the path itself, or `labels.csv` in it when it is a folder."""
    path = Path(csv_path_or_folder).expanduser().absolute()
    if path.is_dir():
        path = path / FILE_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{DATASET}: labels table {path} is not a file")
    return path


def _columns(csv_path: Path, header: list[str] | None) -> list[str]:
    if header is None:
        raise ValueError(f"{csv_path}: empty file, expected a header with the columns {','.join(REQUIRED_COLUMNS)}")
    columns = [name.strip() for name in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"{csv_path}: missing column(s) {', '.join(missing)}")
    repeated = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if columns.count(c) > 1]
    if repeated:
        raise ValueError(f"{csv_path}: column(s) {', '.join(repeated)} appear more than once")
    return columns


def _gender(text: str | None) -> str | None:
    text = (text or "").strip()
    return GENDERS.get(text.lower(), text or None)


def _age(text: str, where: str) -> tuple[float | None, tuple[str, str] | None]:
    """(age, None) or (None, (status, detail))."""
    if not text.strip():
        return None, (MISSING_LABEL, f"{where}: no age")
    try:
        age = float(text)
    except ValueError:
        return None, (MALFORMED_LABEL, f"{where}: age {text!r} is not a number")
    problem = age_problem(age)
    return (None, (problem, f"{where}: age {text.strip()!r}")) if problem else (age, None)


def _row(root: Path, columns: list[str], fields: list[str], where: str, listed: dict[str, str]) -> dict:
    line = {"dataset": DATASET, "image_path": None, "age_source": "real"}
    if len(fields) != len(columns):
        return rejected(
            **line, status=MALFORMED_LINE, detail=f"{where}: expected {len(columns)} fields, found {len(fields)}"
        )
    record = dict(zip(columns, fields))
    if not record["path"].strip() or "\0" in record["path"]:
        return rejected(**line, status=MALFORMED_LINE, detail=f"{where}: path {record['path']!r}")
    path = root / record["path"]
    person = (record.get("person") or "").strip() or None
    row = line | {"image_path": str(path), "person": person, "gender": _gender(record.get("gender"))}
    if problem := outside_root(root, path):
        return rejected(**row, status=OUTSIDE_ROOT, detail=f"{where}: {problem}")
    key = os.path.realpath(path)  # `a.jpg`, `./a.jpg`, `x/../a.jpg`, its absolute path and links to it: one file
    if key in listed:
        return rejected(
            **row, status=DUPLICATE_ROW, detail=f"{where}: {record['path']!r} is listed before, at {listed[key]}"
        )
    listed[key] = where
    age, problem = _age(record["age"], where)
    if problem:
        return rejected(**row, status=problem[0], detail=problem[1])
    if not path.exists():
        return rejected(**row, status=MISSING_FILE, detail=f"{where}: no file {path}")
    group, unreadable = file_group(path)
    if unreadable:
        return rejected(**row, status=UNREADABLE, detail=f"{where}: {unreadable}")
    split_group = f"{DATASET}:{person}" if person else group
    return {**row, "age": age, "split_group": split_group, "status": OK, "detail": None}


def read_labels_table(csv_path_or_folder: str | Path) -> pl.DataFrame:
    """Manifest of a labels table: one row per line of the CSV (blank lines aside), each `ok` or with its reason."""
    csv_path = labels_file(csv_path_or_folder)
    root, rows, listed = csv_path.parent, [], {}
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            columns = _columns(csv_path, next(reader, None))
            for fields in reader:
                if any(field.strip() for field in fields):
                    rows.append(_row(root, columns, fields, f"{csv_path.name}:{reader.line_num}", listed))
        except UnicodeDecodeError as error:
            raise ValueError(f"{csv_path}: not UTF-8 text ({error})") from error
        except csv.Error as error:
            raise ValueError(f"{csv_path}:{reader.line_num}: {error}") from error
    return manifest_frame(rows, EXTRA_SCHEMA)
