import hashlib

import cv2
import numpy as np
import polars as pl
import pytest
from skimage import data

from agenet_pipeline.datasets.manifest import number_rows
from agenet_pipeline.datasets.utkface import read_utkface
from agenet_pipeline.demo.writers import group_photo
from agenet_pipeline.faces.detector import FaceDetector, resolve_model
from agenet_pipeline.faces.settings import FaceSettings
from agenet_pipeline.faces.stage import face_from_photo, faces_of_rows
from agenet_pipeline.faces.summary import detection_rate


@pytest.fixture(scope="module")
def detector():
    with FaceDetector(resolve_model()) as face_detector:
        yield face_detector


def jpeg(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


def test_real_photo_gives_one_square_crop(detector):
    face = face_from_photo(jpeg(data.astronaut()), detector, FaceSettings())
    assert face["status"] == "ok" and face["face_source"] == "detector" and face["faces_found"] == 1
    crop = cv2.imdecode(np.frombuffer(face["crop_jpeg"], np.uint8), cv2.IMREAD_COLOR)
    assert crop.shape == (256, 256, 3)
    assert face["crop_sha256"] == hashlib.sha256(face["crop_jpeg"]).hexdigest()
    assert face["crop_bytes"] == len(face["crop_jpeg"])
    assert 150 < face["box"]["x"] < 200 and face["detector_score"] > 0.8


def test_crop_size_is_configurable(detector):
    face = face_from_photo(jpeg(data.astronaut()), detector, FaceSettings(crop_size=96))
    assert cv2.imdecode(np.frombuffer(face["crop_jpeg"], np.uint8), cv2.IMREAD_COLOR).shape == (96, 96, 3)


def test_photo_without_a_face(detector):
    blank = np.full((200, 200, 3), 128, np.uint8)
    face = face_from_photo(jpeg(blank), detector, FaceSettings())
    assert face["status"] == "no_face" and face["crop_jpeg"] is None


def test_whole_image_fallback_only_when_configured(detector):
    blank = np.full((200, 200, 3), 128, np.uint8)
    face = face_from_photo(jpeg(blank), detector, FaceSettings(fallback_whole_image=True))
    assert face["status"] == "ok" and face["face_source"] == "whole_image" and face["detail"] == "no_face"
    assert face["box"] == {"x": 0, "y": 0, "w": 200, "h": 200}


def test_group_photo_keeps_the_most_confident_face(detector):
    photo = group_photo(np.random.default_rng(0), faces=5)
    face = face_from_photo(jpeg(photo), detector, FaceSettings())
    found = detector.detect(photo)
    assert face["status"] == "ok" and face["faces_found"] >= 3
    assert face["detector_score"] == pytest.approx(max(d.score for d in found), abs=0.02)


def test_small_face_is_rejected(detector):
    face = face_from_photo(jpeg(data.astronaut()), detector, FaceSettings(min_face_size=300))
    assert face["status"] == "too_small" and "< 300" in face["detail"]


def test_rejected_manifest_rows_pass_through_in_place(detector, tmp_path):
    (tmp_path / "bad name.jpg").write_bytes(jpeg(data.astronaut()))
    (tmp_path / "33_1_0_20170101000000000.jpg.chip.jpg").write_bytes(jpeg(data.astronaut()))
    (tmp_path / "34_1_0_20170101000000001.jpg.chip.jpg").write_bytes(b"not an image")
    manifest = number_rows(read_utkface(tmp_path))
    faces = faces_of_rows(manifest, detector, FaceSettings())
    assert faces["row"].to_list() == manifest["row"].to_list()
    assert faces["image_path"].to_list() == manifest["image_path"].to_list()
    assert dict(zip(faces["image_path"].str.split("/").list.last(), faces["status"])) == {
        "33_1_0_20170101000000000.jpg.chip.jpg": "ok",
        "34_1_0_20170101000000001.jpg.chip.jpg": "unreadable",
        "bad name.jpg": "malformed_name",
    }


def test_real_utkface_chips_are_detected(detector, utkface_part1):
    manifest = number_rows(read_utkface(utkface_part1)).filter(pl.col("status") == "ok")
    sample = manifest.sample(300, seed=1)
    faces = faces_of_rows(sample, detector, FaceSettings())
    assert detection_rate(faces) > 0.95
