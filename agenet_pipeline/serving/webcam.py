"""The paper's live demo: faces and estimated ages drawn on a camera's or a video file's frames."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from agenet_pipeline.serving.drawing import age_label, draw_ages
from agenet_pipeline.serving.predictor import AgePredictor, Face, face_answer

WINDOW = "AgeNet (q to quit)"


@dataclass(frozen=True)
class FaceAge:
    face: Face
    bin: int
    bin_label: str
    age: float

    def __str__(self) -> str:
        return age_label(self.age, self.bin_label)


def annotate(frame_bgr: np.ndarray, ages: list[FaceAge]) -> None:
    """Draw each face's box and '<age> y (<bin>)' above it, in place."""
    draw_ages(frame_bgr, [(found.face.box, str(found)) for found in ages])


def frame_ages(predictor: AgePredictor, frame_bgr: np.ndarray) -> list[FaceAge]:
    faces = predictor.faces(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB))
    return [FaceAge(face, **face_answer(p, predictor.bins)) for face, p in zip(faces, predictor.probabilities(faces))]


def open_source(source: str) -> cv2.VideoCapture:
    """A camera by number ('0') or a video file by path."""
    capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not capture.isOpened():
        raise OSError(f"cannot open the video source {source!r} (a camera number or a video file)")
    return capture


def annotated_frames(predictor: AgePredictor, capture: cv2.VideoCapture) -> Iterator[tuple[np.ndarray, list[FaceAge]]]:
    """Each frame, annotated, with its faces' ages, until the stream ends."""
    while True:
        ok, frame = capture.read()
        if not ok:
            return
        ages = frame_ages(predictor, frame)
        annotate(frame, ages)
        yield frame, ages


def run(predictor: AgePredictor, source: str, display: bool, output: Path | None, log: TextIO) -> int:
    """Show the annotated stream, write it to `output`, or else print each frame's ages; the frames processed.

    The video is written to a temporary name and renamed when the stream ends, so a failed run leaves none.
    """
    from agenet_pipeline.core.files import atomic_path

    frames, writer = 0, None
    with ExitStack() as stack:
        capture = open_source(source)
        stack.callback(capture.release)
        video = stack.enter_context(atomic_path(output, suffix=output.suffix)) if output else None
        if display:
            stack.callback(cv2.destroyAllWindows)
        for frame, ages in annotated_frames(predictor, capture):
            frames += 1
            if video:
                writer = writer or _writer(video, capture.get(cv2.CAP_PROP_FPS) or 25.0, frame.shape[1::-1])
                writer.write(frame)
            if display:
                cv2.imshow(WINDOW, frame)
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
            elif not video:
                print(f"frame {frames}: {', '.join(map(str, ages)) or 'no face'}", file=log)
        if video:
            if writer is None:
                raise OSError(f"no frame could be read from {source!r}")
            writer.release()
    return frames


def _writer(path: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise OSError(f"cannot write the video {path} (OpenCV has no mp4v encoder for it)")
    return writer
