"""A contact sheet of face crops, for people to see what the face stage produced."""

from __future__ import annotations

import cv2
import numpy as np


def preview_grid(crops: list[bytes], captions: list[str], columns: int = 8, thumb: int = 96) -> bytes:
    """PNG bytes of the JPEG crops in a grid, each captioned (for example with its age)."""
    if not crops:
        raise ValueError("no crops to preview")
    rows = -(-len(crops) // columns)
    sheet = np.full((rows * thumb, columns * thumb, 3), 255, np.uint8)
    for i, (jpeg, caption) in enumerate(zip(crops, captions)):
        face = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        tile = cv2.resize(face, (thumb, thumb), interpolation=cv2.INTER_AREA)
        cv2.rectangle(tile, (0, thumb - 16), (thumb, thumb), (0, 0, 0), -1)
        cv2.putText(tile, caption, (3, thumb - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        y, x = divmod(i, columns)
        sheet[y * thumb : (y + 1) * thumb, x * thumb : (x + 1) * thumb] = tile
    ok, png = cv2.imencode(".png", sheet)
    if not ok:
        raise RuntimeError("PNG encoding of the preview failed")
    return png.tobytes()
