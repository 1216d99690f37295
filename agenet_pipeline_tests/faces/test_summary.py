import polars as pl

from agenet_pipeline.faces.summary import detection_rate, preview_sample


def faces(rows):
    return pl.DataFrame(rows, schema=["status", "face_source", "faces_found", "age"], orient="row")


def test_detection_rate_counts_only_photos_the_detector_saw():
    table = faces(
        [
            ("ok", "detector", 1, 30.0),
            ("ok", "detector", 3, 40.0),
            ("ok", "whole_image", 0, 50.0),  # fallback: the detector missed it
            ("no_face", None, 0, None),  # the detector found nothing
            ("no_face", None, None, None),  # IMDB's own annotation: never decoded
            ("unreadable", None, None, None),
            ("malformed_name", None, None, None),
        ]
    )
    assert detection_rate(table) == 2 / 4


def test_detection_rate_without_any_detected_photo_is_none():
    assert detection_rate(faces([("unreadable", None, None, None)])) is None


def test_preview_sample_spreads_over_ages():
    table = faces([("ok", "detector", 1, float(age)) for age in range(100)])
    ages = preview_sample(table, count=4)["age"].to_list()
    assert ages == [0.0, 25.0, 50.0, 75.0]
