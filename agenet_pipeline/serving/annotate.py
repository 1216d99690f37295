"""`agenet predict --annotate`: each photo written again with its faces' boxes and estimated ages drawn on it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import polars as pl

from agenet_pipeline.core.files import write_bytes
from agenet_pipeline.core.status import OK
from agenet_pipeline.faces.images import ImageRejected
from agenet_pipeline.serving.drawing import age_label, draw_ages
from agenet_pipeline.serving.photos import path_text
from agenet_pipeline.serving.predictor import read_photo


def annotated_name(file: Path, taken: set[str]) -> str:
    """A JPEG name for the annotated copy of `file`, unique in its folder: the photo's name, numbered if taken."""
    stem, number = Path(path_text(file.name)).stem, 1
    name = f"{stem}.jpg"
    while name in taken:
        number += 1
        name = f"{stem}-{number}.jpg"
    taken.add(name)
    return name


def write_annotated(table: pl.DataFrame, files: Sequence[Path], folder: Path, max_pixels: int) -> int:
    """Write each photo that has a face in `table` (the `agenet predict` table) to `folder` as a JPEG with its
    faces drawn; the photos written."""
    faces = table.filter(pl.col("status") == OK)
    by_file = {file: rows for (file,), rows in faces.partition_by("file", as_dict=True).items()}
    taken: set[str] = set()
    written = 0
    for file in files:
        rows = by_file.get(path_text(file))
        if rows is None:
            continue
        try:
            rgb = read_photo(file, max_pixels)
        except ImageRejected:  # changed since the model read it
            continue
        picture = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        boxes = rows.select("box_x", "box_y", "box_w", "box_h", "age", "bin_label").iter_rows()
        draw_ages(picture, [((x, y, w, h), age_label(age, label)) for x, y, w, h, age, label in boxes])
        write_bytes(folder / annotated_name(file, taken), cv2.imencode(".jpg", picture)[1].tobytes())
        written += 1
    return written
