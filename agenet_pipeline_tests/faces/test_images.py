import io

import cv2
import numpy as np
import pytest
from PIL import Image

from agenet_pipeline.faces.images import ImageRejected, decode_rgb
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
