import io
import os
import tracemalloc

import cv2
import numpy as np
import pytest
from PIL import Image

from agenet_pipeline.faces.images import DEFAULT_MAX_BYTES, ImageRejected, decode_rgb, read_image_file
from agenet_pipeline_tests.formats import png_header_only

# Left half white, top band pure blue: orientation and channel order are both visible.
PATTERN = np.zeros((40, 60, 3), np.uint8)
PATTERN[:, :30] = 255
PATTERN[:10] = (0, 0, 255)


def encoded(image: Image.Image, kind: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


def test_rgb_channel_order():
    rgb = decode_rgb(encoded(Image.fromarray(PATTERN), "PNG"))
    assert rgb.shape == (40, 60, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[5, 45]) == (0, 0, 255)


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to display
    rgb = decode_rgb(encoded(Image.fromarray(PATTERN), "JPEG", exif=exif, quality=95))
    assert rgb.shape == (60, 40, 3)
    # After a clockwise turn the blue top band becomes the right-hand band.
    assert rgb[:, -5, 2].mean() > 200 and rgb[:, -5, 0].mean() < 60


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P"])
def test_other_modes_become_rgb(mode):
    kind = "JPEG" if mode == "CMYK" else "PNG"
    rgb = decode_rgb(encoded(Image.fromarray(PATTERN).convert(mode), kind))
    assert rgb.shape == (40, 60, 3) and rgb.dtype == np.uint8
    assert abs(float(rgb[20, 10].mean()) - 255) < 20  # the white half stays white


def test_sixteen_bit_png_becomes_eight_bit():
    grey16 = PATTERN[..., 0].astype(np.uint16) * 257
    rgb = decode_rgb(cv2.imencode(".png", grey16)[1].tobytes())
    assert rgb.dtype == np.uint8 and rgb.max() == 255 and rgb.shape == (40, 60, 3)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "unreadable"),
        (b"this is a text file named photo.jpg", "unreadable"),
        (encoded(Image.fromarray(PATTERN), "JPEG")[:300], "unreadable"),
        (png_header_only(20_000, 20_000), "too_large"),
    ],
)
def test_bad_inputs_are_rejected_with_a_reason(data, reason):
    with pytest.raises(ImageRejected) as rejection:
        decode_rgb(data)
    assert rejection.value.reason == reason and rejection.value.detail


def padded(path, head: bytes, size: int):
    """`head` followed by zeros up to `size` bytes, as a sparse file (no disk is used for the zeros)."""
    path.write_bytes(head)
    os.truncate(path, size)
    return path


def peak_reading(path) -> tuple[ImageRejected | bytes, int]:
    """What read_image_file gives for `path`, and the peak of Python memory allocated meanwhile (bytes)."""
    tracemalloc.start()
    try:
        result = read_image_file(path)
    except ImageRejected as rejection:
        result = rejection
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, peak


def test_a_file_over_the_byte_limit_is_refused_unread(tmp_path):
    head = encoded(Image.fromarray(PATTERN), "JPEG")
    rejection, peak = peak_reading(padded(tmp_path / "huge.jpg", head, 1_500_000_000))
    assert rejection.reason == "too_large"
    assert rejection.detail == f"1,500,000,000 bytes is over the limit of {DEFAULT_MAX_BYTES:,} bytes"
    assert peak < 1_000_000


def test_the_header_is_checked_before_the_file_is_read_whole(tmp_path):
    rejection, peak = peak_reading(padded(tmp_path / "bomb.png", png_header_only(9000, 9000), 50_000_000))
    assert rejection.reason == "too_large" and "9000x9000 pixels" in rejection.detail
    assert peak < 1_000_000  # the 50 MB file was not read


def test_a_file_within_the_limits_is_read_whole(tmp_path):
    data = encoded(Image.fromarray(PATTERN), "PNG")
    (tmp_path / "photo.png").write_bytes(data)
    assert read_image_file(tmp_path / "photo.png") == data
    with pytest.raises(ImageRejected, match="over the limit of 100 bytes"):
        read_image_file(tmp_path / "photo.png", max_bytes=100)
    with pytest.raises(ImageRejected, match="over the limit of 100 bytes"):
        decode_rgb(data, max_bytes=100)


@pytest.mark.timeout(20)
def test_folders_pipes_and_missing_files_are_unreadable(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")  # opening it for reading would wait for a writer forever
    (tmp_path / "folder.jpg").mkdir()
    (tmp_path / "empty.jpg").write_bytes(b"")
    details = {}
    for name in ("pipe.jpg", "folder.jpg", "empty.jpg", "missing.jpg"):
        with pytest.raises(ImageRejected) as rejection:
            read_image_file(tmp_path / name)
        assert rejection.value.reason == "unreadable"
        details[name] = rejection.value.detail
    assert details == {
        "pipe.jpg": "not a regular file",
        "folder.jpg": "Is a directory",
        "empty.jpg": "empty file",
        "missing.jpg": "No such file or directory",
    }
