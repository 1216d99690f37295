import cv2
import numpy as np
import pytest

from agenet_pipeline.demo.synthetic_faces import draw_face
from agenet_pipeline.serving.cli import main
from agenet_pipeline.serving.drawing import BOX_COLOUR

FRAMES = 12


def frames_of(path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def box_pixels(frame: np.ndarray) -> int:
    return int((np.abs(frame.astype(int) - BOX_COLOUR).sum(axis=-1) < 40).sum())


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 640x480 video of a drawn face (no real person) moving across a grey wall."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    face = cv2.cvtColor(draw_face(30.0, np.random.default_rng(2), 260), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (640, 480))
    for i in range(FRAMES):
        frame = np.full((480, 640, 3), 110, np.uint8)
        frame[100:360, 20 + 25 * i : 280 + 25 * i] = face
        writer.write(frame)
    writer.release()
    return path


def test_the_annotated_video_has_every_frame_with_boxes_drawn(registry, clip, tmp_path, capsys):
    output = tmp_path / "annotated.mp4"
    assert (
        main(["webcam", "--tracking-uri", registry.uri, "--source", str(clip), "--no-display", "--output", str(output)])
        == 0
    )
    source, annotated = frames_of(clip), frames_of(output)
    assert len(annotated) == len(source) == FRAMES and annotated[0].shape == (480, 640, 3)
    assert box_pixels(source[0]) == 0 and all(box_pixels(frame) > 200 for frame in annotated)
    assert f"{FRAMES} frames in" in capsys.readouterr().err


def test_without_a_window_or_a_file_the_ages_are_printed(registry, clip, capsys):
    assert main(["webcam", "--tracking-uri", registry.uri, "--source", str(clip), "--no-display"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == FRAMES and all(" y (" in line for line in lines)


def test_a_source_that_cannot_be_opened_is_named(registry, tmp_path, capsys):
    missing = tmp_path / "none.mp4"
    assert main(["webcam", "--tracking-uri", registry.uri, "--source", str(missing), "--no-display"]) == 1
    assert "cannot open the video source" in capsys.readouterr().err
