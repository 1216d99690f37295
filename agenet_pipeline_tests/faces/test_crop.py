import numpy as np

from agenet_pipeline.faces.crop import square_crop


def test_margin_widens_the_box_on_each_side():
    photo = np.zeros((400, 400, 3), np.uint8)
    photo[150:250, 150:250] = 255  # the "face": a 100 px white square
    crop = square_crop(photo, (150, 150, 100, 100), margin=0.4, size=180)
    # side = 100 * 1.8 = 180 px, so the face fills the middle 100 of 180 pixels, one to one.
    assert crop.shape == (180, 180, 3)
    assert crop[90, 90].min() == 255
    assert crop[39, 90].max() == 0 and crop[41, 90].min() >= 250
    assert crop[90, 139].min() >= 250 and crop[90, 141].max() == 0


def test_outside_the_photo_is_black_padding():
    photo = np.full((100, 100, 3), 200, np.uint8)
    crop = square_crop(photo, (0, 0, 50, 50), margin=0.4, size=90)
    # side 90 around centre (25, 25) starts at -20: the first 20 rows and columns lie outside the photo.
    assert crop[:18].max() == 0 and crop[:, :18].max() == 0
    assert crop[30:, 30:].min() == 200


def test_non_square_box_uses_the_longer_side():
    photo = np.zeros((300, 300, 3), np.uint8)
    photo[:, 30:40] = 255  # a stripe where the square's left edge must fall
    crop = square_crop(photo, (100, 50, 60, 200), margin=0.0, size=64)
    # Square of side 200 centred on (130, 150): x from 30 to 230, so the stripe is the crop's left edge.
    assert crop[:, :2].min() >= 200
    assert crop[:, 5:].max() == 0


def test_large_downscale_keeps_the_mean_colour():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (3000, 3000, 3), dtype=np.uint8)
    crop = square_crop(photo, (500, 500, 2000, 2000), margin=0.0, size=64)
    assert crop.shape == (64, 64, 3)
    # Area averaging: fine noise averages out instead of aliasing into speckle.
    assert crop.std() < 10 and abs(crop.mean() - 127.5) < 5


def test_context_blackens_the_photo_beyond_the_face_surroundings():
    photo = np.full((400, 400, 3), 200, np.uint8)
    crop = square_crop(photo, (150, 150, 100, 100), margin=0.4, size=180, context=1.2)
    # side 180 px at 1:1; 1.2 box sides = the middle 120 px are the photo, a 30 px border of each side is black.
    assert crop[30:150, 30:150].min() == 200
    assert crop[:30].max() == 0 and crop[150:].max() == 0 and crop[:, :30].max() == 0 and crop[:, 150:].max() == 0
    assert square_crop(photo, (150, 150, 100, 100), margin=0.4, size=180).min() == 200


def test_context_wider_than_the_crop_keeps_it_whole():
    photo = np.full((100, 100, 3), 90, np.uint8)
    # The whole photo as the box (aligned chips with no face found): 1.25 box sides lie beyond the crop.
    assert square_crop(photo, (0, 0, 100, 100), margin=0.0, size=64, context=1.25).min() == 90
