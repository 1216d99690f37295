"""What a face table says about the face stage: outcomes, detection rate, a sample for the preview."""

from __future__ import annotations

import polars as pl

from agenet_pipeline.core.status import OK


def detection_rate(faces: pl.DataFrame) -> float | None:
    """Share of decodable photos in which the detector found a usable face (None when no photo reached it)."""
    reached = faces.filter(pl.col("faces_found").is_not_null())  # set only for photos the detector saw
    if reached.is_empty():
        return None
    detected = reached.filter((pl.col("status") == OK) & (pl.col("face_source") == "detector")).height
    return detected / reached.height


def outcome_counts(faces: pl.DataFrame) -> pl.DataFrame:
    """Rows per status and face source (detector or whole-image fallback)."""
    return faces.group_by("status", "face_source").len("rows").sort("status", "face_source", nulls_last=True)


def several_faces(faces: pl.DataFrame) -> int:
    return faces.filter(pl.col("faces_found") > 1).height


def preview_sample(faces: pl.DataFrame, count: int = 16) -> pl.DataFrame:
    """Usable crops spread evenly over the age range."""
    usable = faces.filter(pl.col("status") == OK).sort("age")
    if usable.height <= count:
        return usable
    step = usable.height / count
    return usable[[int(i * step) for i in range(count)]]
