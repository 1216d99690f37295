"""Hardening against odd inputs (issue 14): JPEGs with data after their end, truncated JPEGs, the size limit's
wording, file names that are not UTF-8, files that are not regular, one photo's unexpected failure, output modes."""

import io
import os
import stat
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import polars as pl
import pytest
from PIL import Image

import agenet_pipeline
from agenet_pipeline.core.ages import SEED_BINS
from agenet_pipeline.core.files import atomic_path, write_bytes, write_parquet
from agenet_pipeline.demo.synthetic_faces import draw_face
from agenet_pipeline.faces import images
from agenet_pipeline.faces.images import DEFAULT_MAX_PIXELS, ImageRejected, decode_rgb
from agenet_pipeline.serving import cli, pyfunc
from agenet_pipeline.serving.photos import predict_photos
from agenet_pipeline.serving.predictor import read_photo
from agenet_pipeline_tests.conftest import shared_data
from agenet_pipeline_tests.formats import png_header_only


def face_jpeg(seed: int = 0, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(draw_face(35.0, np.random.default_rng(seed), 200)).save(buffer, "JPEG", **options)
    return buffer.getvalue()


def rejection(data: bytes) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        decode_rgb(data)
    return caught.value


# --- 1. JPEGs: data after the end marker is no truncation; truncation is judged by decoding ---


@pytest.mark.parametrize("source", ["drawn", "drawn progressive", "real photo"])
def test_a_jpeg_with_data_appended_after_its_end_is_read(source):
    if source == "real photo":
        original = min((shared_data("fgnet") / "images").glob("*.JPG")).read_bytes()
    else:
        original = face_jpeg(progressive=source.endswith("progressive"))
    appended = np.random.default_rng(1).integers(0, 256, 8192, dtype=np.uint8).tobytes()  # > 4 KB, as phones add
    for trailer in (appended, face_jpeg(2), b"\0" * 65536):
        assert np.array_equal(decode_rgb(original + trailer), decode_rgb(original))


def with_thumbnail(jpeg: bytes) -> bytes:
    """The JPEG with a small JPEG in an APP1 segment after its start, as cameras store a thumbnail in EXIF."""
    thumbnail = face_jpeg(3)
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", 2 + 6 + len(thumbnail)) + b"Exif\0\0" + thumbnail + jpeg[2:]


@pytest.mark.parametrize("thumbnail", [False, True], ids=["plain", "with a thumbnail's end marker before the scans"])
def test_a_truncated_jpeg_is_refused_as_truncated(thumbnail):
    image = face_jpeg()
    whole = with_thumbnail(image) if thumbnail else image
    assert decode_rgb(whole).shape == (200, 200, 3)
    for cut in (len(whole) - len(image) // 2, len(whole) - len(image) // 4, len(whole) - 2):  # within the scan
        for padding in (b"", b"\0" * 8192):  # a download cut short in a preallocated file is padded with zeros
            found = rejection(whole[:cut] + padding)
            assert found.reason == "unreadable" and "truncated JPEG" in found.detail, (cut, len(padding))


def progressive_cut_after_a_comment_holding_ffd9() -> bytes:
    """A progressive JPEG cut in its third scan, with FFD9 bytes in a comment after its first scan: an end marker
    in the data that is no end of the image."""
    whole = face_jpeg(progressive=True)
    second_scan = whole.find(b"\xff\xda", whole.find(b"\xff\xda") + 2)
    comment = b"\xff\xfe" + struct.pack(">H", 2 + 4) + b"\xff\xd9\xff\xd9"
    with_comment = whole[:second_scan] + comment + whole[second_scan:]
    assert np.array_equal(decode_rgb(with_comment), decode_rgb(whole))  # the comment alone harms nothing
    third_scan = with_comment.find(b"\xff\xda", second_scan + len(comment) + 2)
    return with_comment[: third_scan + 40]


def test_a_truncated_jpeg_holding_an_end_marker_is_refused_as_truncated():
    found = rejection(progressive_cut_after_a_comment_holding_ffd9())
    assert found.reason == "unreadable" and "truncated JPEG" in found.detail


def test_truncation_is_found_where_opencv_fills_the_missing_part_with_grey(monkeypatch):
    """OpenCV 4 returned pixels for a truncated JPEG (grey below the cut); OpenCV 5 returns nothing."""
    monkeypatch.setattr(images, "_opencv_decodes_truncated_jpegs", lambda: True)
    monkeypatch.setattr(images.cv2, "imdecode", lambda buffer, flags: np.full((200, 200, 3), 128, np.uint8))
    found = rejection(progressive_cut_after_a_comment_holding_ffd9())
    assert found.reason == "unreadable" and "truncated JPEG" in found.detail
    assert decode_rgb(face_jpeg()).shape == (200, 200, 3)  # a whole JPEG still goes through


# --- 2. too_large says our limit, whatever Pillow's own limit says ---


def jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(face_jpeg())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("side", [9_000, 14_000, 20_000, 65_000])  # below, past and past twice Pillow's limit
@pytest.mark.parametrize("kind", ["PNG", "JPEG"])
def test_too_large_names_the_size_and_our_limit(kind, side):
    data = png_header_only(side, side) if kind == "PNG" else jpeg_claiming(side, side)
    found = rejection(data)
    assert (found.reason, found.detail) == ("too_large", f"{side}x{side} pixels is over the limit of 64,000,000")


# --- found by the fuzz test: a side MediaPipe's detector cannot take aborted the whole process ---


def test_a_side_the_detector_cannot_take_is_refused_not_the_end_of_the_process():
    """A side of 32,767 pixels or more makes an OpenCV assertion inside MediaPipe fail, which aborts the process:
    the face stage's worker or the serving process with it. Run in a child process, so that an abort fails this test
    instead of ending the test run."""
    program = (
        "import cv2, numpy as np\n"
        "from agenet_pipeline.faces.detector import FaceDetector, resolve_model\n"
        "from agenet_pipeline.faces.settings import FaceSettings\n"
        "from agenet_pipeline.faces.stage import face_from_photo\n"
        "png = cv2.imencode('.png', np.zeros((2, 32_767, 3), np.uint8))[1].tobytes()\n"
        "with FaceDetector(resolve_model()) as detector:\n"
        "    row = face_from_photo(png, detector, FaceSettings())\n"
        "print(row['status'], '|', row['detail'])\n"
    )
    root = Path(agenet_pipeline.__file__).parents[1]
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(root)},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "too_large | 32767x2 pixels: a side is over the limit of 32,766"
    assert rejection(jpeg_claiming(65_535, 30)).detail == "65535x30 pixels: a side is over the limit of 32,766"
    with pytest.raises(ImageRejected, match="a side is over the limit"):
        read_photo(np.zeros((2, 32_767, 3), np.uint8), DEFAULT_MAX_PIXELS)  # an array sent to the served model


# --- 3 and 4. agenet predict: a row for every file, whatever its name, its kind or its failure ---


@pytest.fixture
def agenet_predict(registry, tmp_path):
    """`agenet predict PATHS --output ages.csv` with the tiny registered model: (exit code, table or None)."""

    def run(*paths: str | os.PathLike) -> tuple[int, pl.DataFrame | None]:
        output = tmp_path / "ages.csv"
        output.unlink(missing_ok=True)
        code = cli.main(["predict", "--tracking-uri", registry.uri, *map(os.fsdecode, paths), "--output", str(output)])
        return code, pl.read_csv(output) if output.exists() else None

    return run


def write_photo(path: str | bytes | os.PathLike, seed: int = 0) -> None:
    with open(path, "wb") as file:
        file.write(face_jpeg(seed))


def test_a_file_name_that_is_not_utf8_gets_its_row(agenet_predict, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_photo(folder / "good.jpg")
    write_photo(os.path.join(os.fsencode(folder), b"caf\xe9_latin1.jpg"), 1)
    with open(os.path.join(os.fsencode(folder), b"notes_\xff.txt"), "wb") as file:
        file.write(b"not a photo")
    code, table = agenet_predict(folder)
    assert code == 0 and table is not None
    statuses = dict(zip(table["file"], table["status"]))
    assert statuses == {
        f"{folder}/caf\\xe9_latin1.jpg": "ok",  # the byte that is not UTF-8, escaped
        f"{folder}/good.jpg": "ok",
        f"{folder}/notes_\\xff.txt": "unreadable",
    }


def test_one_photo_failing_unexpectedly_is_its_row_not_the_run(agenet_predict, tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.jpg", "boom.jpg", "c.jpg"):
        write_photo(folder / name)
    real = pyfunc.read_photo

    def read_photo(item, *limits):
        if str(item).endswith("boom.jpg"):
            raise RuntimeError("the decoder lost its mind")
        return real(item, *limits)

    monkeypatch.setattr(pyfunc, "read_photo", read_photo)
    code, table = agenet_predict(folder)
    assert code == 0 and table is not None
    rows = {
        file.rsplit("/", 1)[1]: (status, detail)
        for file, status, detail in table.select("file", "status", "detail").iter_rows()
    }
    assert rows == {
        "a.jpg": ("ok", None),
        "boom.jpg": ("error", "RuntimeError: the decoder lost its mind"),
        "c.jpg": ("ok", None),
    }


def test_a_model_failing_for_a_batch_loses_only_the_file_it_fails_for(served, tmp_path):
    """A model logged before its pyfunc caught unexpected errors raises for the whole batch: each file is then
    asked alone."""
    files = []
    for name in ("a.jpg", "boom.jpg", "c.jpg"):
        files.append(tmp_path / name)
        write_photo(files[-1])

    class Fragile:
        def predict(self, frame, params=None):
            if any(path.endswith("boom.jpg") for path in frame["path"]):
                raise ValueError("cannot")
            return served.predict(frame, params)

    table = predict_photos(Fragile(), files, SEED_BINS, batch_size=8)
    assert table.select("status", "detail").rows() == [("ok", None), ("error", "ValueError: cannot"), ("ok", None)]


@pytest.mark.timeout(60)  # opening the FIFO to read it would block for ever
def test_every_entry_of_a_folder_gets_a_row(agenet_predict, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_photo(folder / "good.jpg")
    os.symlink("/dev/null", folder / "null.jpg")
    os.symlink("/dev/zero", folder / "zero.jpg")
    os.mkfifo(folder / "pipe.jpg")
    os.symlink(folder / "gone.jpg", folder / "dangling.jpg")
    os.symlink("loop.jpg", folder / "loop.jpg")
    code, table = agenet_predict(folder)
    assert code == 0 and table is not None
    rows = {
        file.rsplit("/", 1)[1]: (status, detail)
        for file, status, detail in table.select("file", "status", "detail").iter_rows()
    }
    assert {name: status for name, (status, _) in rows.items()} == {
        "dangling.jpg": "unreadable",
        "good.jpg": "ok",
        "loop.jpg": "unreadable",
        "null.jpg": "unreadable",
        "pipe.jpg": "unreadable",
        "zero.jpg": "unreadable",
    }
    assert all("not a regular file" in rows[name][1] for name in ("null.jpg", "pipe.jpg", "zero.jpg"))
    assert "No such file" in rows["dangling.jpg"][1]
    code, table = agenet_predict(folder / "dangling.jpg")  # named on its own
    assert code == 0 and table is not None and table["status"].to_list() == ["unreadable"]


# --- 5. outputs get the mode the umask gives, not mkstemp's 0600 ---


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)], ids=["022", "077", "002"])
def test_written_files_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_parquet(pl.DataFrame({"a": [1]}), tmp_path / "table.parquet")
        with atomic_path(tmp_path / "ages.csv", suffix=".csv") as tmp:
            tmp.write_text("file,status\n")
        with atomic_path(tmp_path / "video.mp4", suffix=".mp4") as tmp:  # a writer that makes the file anew
            tmp.unlink()
            tmp.write_bytes(b"")
    finally:
        os.umask(old)
    for name in ("table.parquet", "ages.csv", "video.mp4"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_the_umask_is_read_without_being_changed(tmp_path):
    old = os.umask(0o027)
    try:
        write_bytes(tmp_path / "file", b"x")
        assert os.umask(0o027) == 0o027
        assert stat.S_IMODE((tmp_path / "file").stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_a_whole_jpeg_decodes_as_before():
    """The checks leave the pixels alone: the same as OpenCV's own decode."""
    data = face_jpeg()
    expected = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert np.array_equal(decode_rgb(data), expected) and expected.shape == (200, 200, 3)
