"""UTKFace: labels in the file names, `AGE_GENDER_RACE_DATETIME.jpg.chip.jpg`.

A few released names lack the race field (`61_1_20170109142408075.jpg.chip.jpg`): they keep their age and
gender and get no race. Any other name that does not parse is kept as a `malformed_name` row.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from agenet_pipeline.core.ages import age_problem
from agenet_pipeline.core.status import MALFORMED_NAME, OK, UNREADABLE
from agenet_pipeline.datasets.manifest import file_group, manifest_frame, photos_in, rejected, require_folder

DATASET = "utkface"
GENDERS = {0: "male", 1: "female"}
RACES = {0: "white", 1: "black", 2: "asian", 3: "indian", 4: "other"}
EXTRA_SCHEMA = {"gender": pl.String, "race": pl.String, "taken_at": pl.String}

_NAME = re.compile(r"^(?P<age>-?\d{1,3})_(?P<gender>[01])_(?:(?P<race>[0-4])_)?(?P<taken_at>\d+)\.jpg\.chip\.jpg$")


def parse_name(name: str) -> dict | None:
    """Labels from a UTKFace file name, or None when the name does not follow the release's pattern."""
    match = _NAME.match(name)
    if match is None:
        return None
    race = match["race"]
    return {
        "age": float(match["age"]),
        "gender": GENDERS[int(match["gender"])],
        "race": RACES[int(race)] if race is not None else None,
        "taken_at": match["taken_at"],
    }


def read_utkface(root: str | Path) -> pl.DataFrame:
    root = require_folder(root, DATASET)
    rows = []
    for path, row in photos_in(root, DATASET, (".jpg", ".jpeg", ".png"), rows):
        labels = parse_name(path.name)
        if labels is None:
            rows.append(
                rejected(
                    **row, status=MALFORMED_NAME, detail=f"{path.name} is not AGE_GENDER_RACE_DATETIME.jpg.chip.jpg"
                )
            )
            continue
        problem = age_problem(labels["age"])
        if problem:
            rows.append(rejected(**row, **labels | {"age": None}, status=problem, detail=f"age {labels['age']:g}"))
            continue
        group, unreadable = file_group(path)
        status, detail = (OK, None) if unreadable is None else (UNREADABLE, unreadable)
        rows.append({**row, **labels, "split_group": group, "status": status, "detail": detail})
    return manifest_frame(rows, EXTRA_SCHEMA)
