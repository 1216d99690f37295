import shutil
import subprocess
import sys

import pytest
from skimage import data

from agenet_pipeline.faces.detector import BUNDLED_MODEL, DetectorModelError, FaceDetector, resolve_model


def test_bundled_model_is_verified():
    assert resolve_model() == BUNDLED_MODEL.absolute()


def test_wrong_checksum_is_refused_with_how_to_supply(tmp_path):
    tampered = tmp_path / "model.tflite"
    shutil.copy(BUNDLED_MODEL, tampered)
    with tampered.open("ab") as f:
        f.write(b"\0")
    with pytest.raises(DetectorModelError, match="SHA-256.*mediapipe==0.10.21"):
        resolve_model(str(tampered))
    assert resolve_model(str(tampered), sha256=None) == tampered


def test_missing_model_names_the_path(tmp_path):
    with pytest.raises(DetectorModelError, match="nowhere.tflite.*not found"):
        resolve_model(str(tmp_path / "nowhere.tflite"))


def test_finds_the_astronaut():
    with FaceDetector(resolve_model()) as detector:
        faces = detector.detect(data.astronaut())
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert faces[0].score > 0.8
    assert 150 < x < 200 and 60 < y < 110 and 70 < w < 130 and 70 < h < 130


def test_the_detector_leaves_tensorflow_unloaded_and_importable():
    """MediaPipe would import TensorFlow, where installed, for its documentation decorators (about 4 s a process)."""
    script = (
        "import sys\n"
        "from agenet_pipeline.faces.detector import FaceDetector, resolve_model\n"
        "with FaceDetector(resolve_model()) as detector:\n"
        "    print('tensorflow' in sys.modules)\n"
        "import tensorflow\n"
        "print(tensorflow.constant(2).numpy())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == ["False", "2"]
