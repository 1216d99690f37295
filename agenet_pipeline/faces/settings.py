"""How faces are found and cropped: one object, used by the face stage and packaged with the served model, so
that a served crop is made as the training crops were."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agenet_pipeline.faces.detector import Detection
from agenet_pipeline.faces.images import DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class FaceSettings:
    margin: float = 0.4  # added on each side of the detected box, as a share of its longer side
    # The photo kept around the face, in box sides (the rest black, as aligned chips have it); None keeps the margin's.
    # UTKFace's chips show 1.00 to 1.16 of the detected box's side (5th to 95th percentile).
    context: float | None = 1.25
    crop_size: int = 256  # side of the square RGB crop
    min_score: float = 0.5  # lowest detector score accepted as a face
    min_face_size: int = 20  # smallest face side in source pixels
    fallback_whole_image: bool = False  # the whole photo when no face is found (datasets of aligned crops)
    jpeg_quality: int = 90  # of the stored crops
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger photos are refused before decoding

    @classmethod
    def recorded(cls, record: dict) -> FaceSettings:
        """Settings recorded as a dict; a record from before `context` existed made its crops without one."""
        return cls(**{"context": None, **record})

    def usable_faces(self, detections: Sequence[Detection]) -> list[Detection]:
        """The faces confident and large enough, most confident first. The face stage keeps the first; the served
        model answers for each."""
        return [d for d in detections if d.score >= self.min_score and max(d.box[2:]) >= self.min_face_size]
