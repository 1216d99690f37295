"""How faces are found and cropped: one object, used by the face stage and packaged with the served model, so
that a served crop is made as the training crops were."""

from __future__ import annotations

from dataclasses import dataclass

from agenet_pipeline.faces.images import DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class FaceSettings:
    margin: float = 0.4  # added on each side of the detected box, as a share of its longer side
    crop_size: int = 256  # side of the square RGB crop
    min_score: float = 0.5  # lowest detector score accepted as a face
    min_face_size: int = 20  # smallest face side in source pixels
    fallback_whole_image: bool = False  # the whole photo when no face is found (datasets of aligned crops)
    jpeg_quality: int = 90  # of the stored crops
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger photos are refused before decoding
