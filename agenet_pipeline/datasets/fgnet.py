"""FG-NET: 1,002 photos of 82 people, aged 0 to 69, with the labels in the file names: `PPPAaa.JPG` is person PPP
at age aa (`001A02.JPG`); a second photo at the same age has a lowercase letter after the age (`001A43a.JPG`,
`001A43b.JPG`). Files at any depth under the root; the extension's case does not matter.

The person is the split group, so that one person's photos stay on one side of a split. Any other image file
name is kept as a `malformed_name` row.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from agenet_pipeline.core.ages import age_problem
from agenet_pipeline.core.status import MALFORMED_NAME, OK
from agenet_pipeline.datasets.manifest import manifest_frame, photos_in, rejected, require_folder

DATASET = "fgnet"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
EXTRA_SCHEMA = {"person": pl.String}

_NAME = re.compile(r"^(?P<person>\d{3})A(?P<age>\d{2,3})[a-z]?\.(?i:jpe?g|png)$")


def parse_name(name: str) -> dict | None:
    """Person and age from an FG-NET file name, or None when the name does not follow the release's pattern."""
    match = _NAME.match(name)
    if match is None:
        return None
    return {"person": match["person"], "age": float(match["age"])}


def read_fgnet(root: str | Path) -> pl.DataFrame:
    root = require_folder(root, DATASET)
    rows = []
    for path, row in photos_in(root, DATASET, IMAGE_SUFFIXES, rows):
        labels = parse_name(path.name)
        if labels is None:
            detail = f"{path.name} is not PPPAaa.JPG (person, A, age, an optional letter)"
            rows.append(rejected(**row, status=MALFORMED_NAME, detail=detail))
            continue
        row["person"] = labels["person"]
        if problem := age_problem(labels["age"]):
            rows.append(rejected(**row, status=problem, detail=f"{path.name}: age {labels['age']:g}"))
            continue
        group = f"{DATASET}:{labels['person']}"
        rows.append({**row, "age": labels["age"], "split_group": group, "status": OK, "detail": None})
    return manifest_frame(rows, EXTRA_SCHEMA)
