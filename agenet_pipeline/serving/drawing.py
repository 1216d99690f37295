"""Faces' boxes and estimated ages drawn on a picture: the webcam's frames and `agenet predict --annotate`."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

BOX_COLOUR = (60, 220, 60)  # BGR


def age_label(age: float, bin_label: str) -> str:
    return f"{age:.0f} y ({bin_label})"


def draw_ages(picture_bgr: np.ndarray, faces: Sequence[tuple[tuple[int, int, int, int], str]]) -> None:
    """Draw each (box, label): the box, and the label on a band above it, in place."""
    scale = max(picture_bgr.shape[0] / 720, 0.4)
    thickness = max(int(2 * scale), 1)
    for (x, y, w, h), label in faces:
        cv2.rectangle(picture_bgr, (x, y), (x + w, y + h), BOX_COLOUR, thickness)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, thickness)
        top = max(y - th - base - 4, 0)
        cv2.rectangle(picture_bgr, (x, top), (x + tw + 4, top + th + base + 4), BOX_COLOUR, cv2.FILLED)
        cv2.putText(
            picture_bgr, label, (x + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale, (0, 0, 0), thickness
        )
