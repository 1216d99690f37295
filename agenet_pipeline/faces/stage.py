"""The face stage for one photo and for one shard of manifest rows: decode, detect, crop, encode."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl

from agenet_pipeline.core.status import LOW_SCORE, NO_FACE, OK, TOO_SMALL
from agenet_pipeline.faces.crop import encode_crop, square_crop
from agenet_pipeline.faces.detector import FaceDetector
from agenet_pipeline.faces.images import ImageRejected, decode_rgb, read_image_file
from agenet_pipeline.faces.settings import FaceSettings

FACE_SCHEMA = {
    "box": pl.Struct({"x": pl.Int64, "y": pl.Int64, "w": pl.Int64, "h": pl.Int64}),
    "detector_score": pl.Float64,
    "faces_found": pl.Int64,
    "face_source": pl.String,
    "crop_jpeg": pl.Binary,
    "crop_bytes": pl.Int64,
    "crop_sha256": pl.String,
}


def _no_face(status: str, detail: str | None, faces_found: int | None = None, score: float | None = None) -> dict:
    return {
        "status": status,
        "detail": detail,
        "box": None,
        "detector_score": score,
        "faces_found": faces_found,
        "face_source": None,
        "crop_jpeg": None,
        "crop_bytes": None,
        "crop_sha256": None,
    }


def face_from_photo(data: bytes, detector: FaceDetector, settings: FaceSettings) -> dict:
    """Face columns plus `status`/`detail` for one encoded photo: the most confident face, cropped."""
    try:
        rgb = decode_rgb(data, settings.max_pixels)
    except ImageRejected as rejection:
        return _no_face(rejection.reason, rejection.detail)
    detections = detector.detect(rgb)
    confident = [d for d in detections if d.score >= settings.min_score]
    usable = settings.usable_faces(detections)
    best = usable[0] if usable else (detections[0] if detections else None)
    if usable:
        problem = None
    elif confident:
        largest = max(confident, key=lambda d: max(d.box[2:]))
        problem = (TOO_SMALL, f"face {largest.box[2]}x{largest.box[3]} px < {settings.min_face_size}")
    else:
        problem = (LOW_SCORE, f"best score {best.score:.2f} < {settings.min_score}") if best else (NO_FACE, None)
    score = best.score if best else None
    if problem is None:
        box, margin, source = best.box, settings.margin, "detector"
    elif settings.fallback_whole_image:
        box, margin, source = (0, 0, rgb.shape[1], rgb.shape[0]), 0.0, "whole_image"
    else:
        return _no_face(*problem, faces_found=len(confident), score=score)
    jpeg = encode_crop(square_crop(rgb, box, margin, settings.crop_size, settings.context), settings.jpeg_quality)
    return {
        "status": OK,
        "detail": problem[0] if problem else None,
        "box": dict(zip("xywh", map(int, box))),
        "detector_score": score,
        "faces_found": len(confident),
        "face_source": source,
        "crop_jpeg": jpeg,
        "crop_bytes": len(jpeg),
        "crop_sha256": hashlib.sha256(jpeg).hexdigest(),
    }


def _face_from_file(path: str, detector: FaceDetector, settings: FaceSettings) -> dict:
    try:
        data = read_image_file(Path(path), settings.max_pixels)
    except ImageRejected as rejection:
        return _no_face(rejection.reason, rejection.detail)
    return face_from_photo(data, detector, settings)


def faces_of_rows(manifest: pl.DataFrame, detector: FaceDetector, settings: FaceSettings) -> pl.DataFrame:
    """The manifest rows with the face columns added; rows rejected earlier keep their status and get no face."""
    faces = [
        _face_from_file(path, detector, settings) if status == OK else _no_face(status, detail)
        for path, status, detail in zip(manifest["image_path"], manifest["status"], manifest["detail"])
    ]
    columns = pl.from_dicts(faces, schema={"status": pl.String, "detail": pl.String, **FACE_SCHEMA})
    return pl.concat([manifest.drop("status", "detail"), columns], how="horizontal").select(
        *manifest.columns, *FACE_SCHEMA
    )
