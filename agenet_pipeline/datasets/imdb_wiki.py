"""IMDB-WIKI: `imdb.mat` or `wiki.mat`, a MATLAB struct of parallel arrays, images relative to the file.

Age is the year the photo was taken minus the year of birth (`dob` is a MATLAB serial date number).
Rows with no face, a second face or an impossible age stay in the manifest with that reason; the
usable rows can then be sampled (seeded), as the paper sampled 37,000 of them.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import polars as pl
import scipy.io

from agenet_pipeline.core.ages import age_problem
from agenet_pipeline.core.status import MALFORMED_LINE, MISSING_FILE, NO_FACE, OK, OUTSIDE_ROOT
from agenet_pipeline.datasets.manifest import manifest_frame, outside_root, require_folder

DATASET = "imdb_wiki"
FIELDS = ("dob", "photo_taken", "full_path", "gender", "face_score", "second_face_score")
EXTRA_SCHEMA = {
    "source": pl.String,
    "person_id": pl.String,
    "gender": pl.String,
    "birth_year": pl.Int64,
    "photo_taken": pl.Int64,
    "face_score": pl.Float64,
    "second_face_score": pl.Float64,
}
_PERSON = re.compile(r"^(nm\d+)_")
_MATLAB_EPOCH_OFFSET = 366  # MATLAB's day 1 is 0000-01-01; Python's ordinal 1 is 0001-01-01


def find_mat_files(root: Path) -> list[Path]:
    found = sorted(p for pattern in ("imdb.mat", "wiki.mat", "*/imdb.mat", "*/wiki.mat") for p in root.glob(pattern))
    if not found:
        raise FileNotFoundError(f"{DATASET}: no imdb.mat or wiki.mat in {root} or its subfolders")
    return found


def birth_year(matlab_datenum: float) -> int | None:
    if not np.isfinite(matlab_datenum) or matlab_datenum < _MATLAB_EPOCH_OFFSET + 1:
        return None
    try:
        return dt.date.fromordinal(int(matlab_datenum) - _MATLAB_EPOCH_OFFSET).year
    except (ValueError, OverflowError):
        return None


def _load_struct(mat_path: Path) -> dict[str, np.ndarray]:
    try:
        mat = scipy.io.loadmat(mat_path)
    except Exception as error:  # scipy raises several unrelated types for a damaged file
        raise ValueError(f"{mat_path}: not a readable MATLAB file ({error})") from error
    name = mat_path.stem
    if name not in mat:
        raise ValueError(
            f"{mat_path}: no struct named {name!r} (found {', '.join(k for k in mat if not k.startswith('__'))})"
        )
    struct = mat[name][0, 0]
    missing = [f for f in FIELDS if f not in (struct.dtype.names or ())]
    if missing:
        raise ValueError(f"{mat_path}: struct {name!r} lacks field(s) {', '.join(missing)}")
    columns = {f: struct[f].ravel() for f in FIELDS}
    lengths = {f: len(v) for f, v in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{mat_path}: fields differ in length {lengths}")
    return columns


def _path_text(cell) -> str | None:
    values = np.asarray(cell).ravel()
    return str(values[0]) if values.size else None


def _rows(mat_path: Path, root: Path) -> list[dict]:
    columns = _load_struct(mat_path)
    folder = mat_path.parent
    rows = []
    for i in range(len(columns["dob"])):
        relative = _path_text(columns["full_path"][i])
        person = _PERSON.match(Path(relative).name) if relative else None
        year = birth_year(float(columns["dob"][i]))
        taken = int(columns["photo_taken"][i]) if np.isfinite(columns["photo_taken"][i]) else None
        gender = float(columns["gender"][i])
        face_score = float(columns["face_score"][i])
        second = float(columns["second_face_score"][i])
        row = {
            "dataset": DATASET,
            "image_path": str(folder / relative) if relative else None,
            "age": float(taken - year) if taken is not None and year is not None else None,
            "age_source": "real",
            "split_group": f"imdb:{person[1]}" if person else None,
            "source": mat_path.stem,
            "person_id": person[1] if person else None,
            "gender": {0.0: "female", 1.0: "male"}.get(gender),
            "birth_year": year,
            "photo_taken": taken,
            "face_score": face_score,
            "second_face_score": second,
        }
        row["status"], row["detail"] = _status(row, face_score, second, f"{mat_path.name}[{i}]", root)
        if row["status"] != OK:
            row["age"] = None
        rows.append(row)
    return rows


def _status(row: dict, face_score: float, second_face_score: float, where: str, root: Path) -> tuple[str, str | None]:
    if row["image_path"] is None:
        return MALFORMED_LINE, f"{where}: empty full_path"
    if problem := outside_root(root, Path(row["image_path"])):  # an absolute full_path, or `..` in it
        return OUTSIDE_ROOT, f"{where}: {problem}"
    if not np.isfinite(face_score):
        return NO_FACE, f"{where}: face_score {face_score}"
    if not np.isnan(second_face_score):
        return "second_face", f"{where}: second_face_score {second_face_score:.2f}"
    problem = age_problem(row["age"])
    if problem:
        return problem, f"{where}: photo_taken {row['photo_taken']} - birth_year {row['birth_year']}"
    if not Path(row["image_path"]).is_file():
        return MISSING_FILE, f"{where}: no file {row['image_path']}"
    return OK, None


def read_imdb_wiki(root: str | Path) -> pl.DataFrame:
    """Manifest of every row of every `.mat` under root, each `ok` or with the reason it is rejected."""
    root = require_folder(root, DATASET)
    return manifest_frame([row for mat in find_mat_files(root) for row in _rows(mat, root)], EXTRA_SCHEMA)


def sample_usable(manifest: pl.DataFrame, sample_size: int | None, seed: int = 0) -> tuple[pl.DataFrame, int]:
    """The rejected rows plus a seeded sample of `sample_size` usable rows, and how many usable rows were left out."""
    usable = manifest.filter(pl.col("status") == OK)
    if sample_size is None or usable.height <= sample_size:
        return manifest, 0
    sample = usable.sample(n=sample_size, seed=seed).sort("image_path")
    return pl.concat([manifest.filter(pl.col("status") != OK), sample]), usable.height - sample_size
