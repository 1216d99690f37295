from pathlib import Path

import polars as pl
import pytest

from agenet_pipeline.datasets.fgnet import parse_name, read_fgnet
from agenet_pipeline.datasets.manifest import MANIFEST_SCHEMA, number_rows
from agenet_pipeline.faces.detector import resolve_model
from agenet_pipeline.faces.settings import FaceSettings
from agenet_pipeline.faces.sharded import run_face_stage
from agenet_pipeline.faces.storage import read_faces
from agenet_pipeline.faces.summary import detection_rate
from agenet_pipeline_tests.formats import write_fgnet, write_jpeg


def by_name(manifest: pl.DataFrame) -> dict[str, dict]:
    return {Path(row["image_path"]).name: row for row in manifest.iter_rows(named=True)}


def test_manifest_of_a_folder_with_good_and_malformed_names(tmp_path):
    root = tmp_path / "FGNET"
    write_fgnet(
        root / "images",
        [
            "001A02.JPG",
            "001A43a.JPG",
            "001A43b.JPG",
            "002A00.jpg",
            "082A69.Jpeg",
            "003A130.JPG",
            "1A02.JPG",
            "001B02.JPG",
            "001A02A.JPG",
            "001A4.JPG",
            "001a02.JPG",
            "sub/004A16.JPG",
        ],
    )
    (root / "images" / "readme.txt").write_text("not an image")
    (root / "points").mkdir()
    (root / "points" / "001a02.pts").write_text("version: 1")  # the release's landmark files are not photos

    manifest = read_fgnet(root)
    rows = by_name(manifest)

    assert manifest.columns == [*MANIFEST_SCHEMA, "person"]
    assert set(manifest["dataset"]) == {"fgnet"} and set(manifest["age_source"]) == {"real"}
    assert {name: (row["status"], row["age"], row["person"], row["split_group"]) for name, row in rows.items()} == {
        "001A02.JPG": ("ok", 2.0, "001", "fgnet:001"),
        "001A43a.JPG": ("ok", 43.0, "001", "fgnet:001"),
        "001A43b.JPG": ("ok", 43.0, "001", "fgnet:001"),
        "002A00.jpg": ("ok", 0.0, "002", "fgnet:002"),
        "082A69.Jpeg": ("ok", 69.0, "082", "fgnet:082"),
        "004A16.JPG": ("ok", 16.0, "004", "fgnet:004"),
        "003A130.JPG": ("label_out_of_range", None, "003", None),
        "1A02.JPG": ("malformed_name", None, None, None),
        "001B02.JPG": ("malformed_name", None, None, None),
        "001A02A.JPG": ("malformed_name", None, None, None),
        "001A4.JPG": ("malformed_name", None, None, None),
        "001a02.JPG": ("malformed_name", None, None, None),
    }
    assert rows["003A130.JPG"]["detail"] == "003A130.JPG: age 130"
    assert rows["001B02.JPG"]["detail"] == "001B02.JPG is not PPPAaa.JPG (person, A, age, an optional letter)"
    assert manifest.filter(pl.col("status") == "ok")["detail"].is_null().all()


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        ("001A02.JPG", {"person": "001", "age": 2.0}),
        ("065A07b.JPG", {"person": "065", "age": 7.0}),
        ("010A07a.jpg", {"person": "010", "age": 7.0}),
        ("001A43.png", {"person": "001", "age": 43.0}),
        ("001A43ab.JPG", None),
        ("001A43.JPG.bak", None),
        ("001A43.gif", None),
        ("0001A43.JPG", None),
    ],
)
def test_names(name, labels):
    assert parse_name(name) == labels


def test_a_link_to_a_photo_outside_the_root_is_outside_root(tmp_path):
    root = tmp_path / "FGNET"
    write_fgnet(root, ["001A02.JPG"])
    (root / "002A05.JPG").symlink_to(write_jpeg(tmp_path / "elsewhere" / "secret.jpg"))

    rows = by_name(read_fgnet(root))

    assert {name: row["status"] for name, row in rows.items()} == {"001A02.JPG": "ok", "002A05.JPG": "outside_root"}
    assert rows["002A05.JPG"]["detail"] == (
        f"{root / '002A05.JPG'} leads to {(tmp_path / 'elsewhere' / 'secret.jpg').resolve()}, "
        f"outside the dataset root {root.resolve()}"
    )
    assert (rows["002A05.JPG"]["age"], rows["002A05.JPG"]["person"]) == (None, None)


def test_a_missing_root_is_an_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_fgnet(tmp_path / "nowhere")


def test_the_real_fgnet(fgnet):
    manifest = read_fgnet(fgnet)

    assert manifest.height == 1002
    assert manifest["status"].value_counts().rows() == [("ok", 1002)]
    assert manifest["person"].n_unique() == 82 and manifest["split_group"].n_unique() == 82
    assert (manifest["age"].min(), manifest["age"].max()) == (0.0, 69.0)
    second_photos = by_name(manifest.filter(pl.col("image_path").str.contains(r"A\d\d[ab]\.JPG$")))
    assert len(second_photos) == 28
    assert (second_photos["001A43a.JPG"]["age"], second_photos["001A43b.JPG"]["person"]) == (43.0, "001")


def test_real_photos_through_the_face_stage(fgnet, tmp_path):
    manifest = number_rows(read_fgnet(fgnet)[::25].head(40))

    run_face_stage(manifest, tmp_path / "faces", resolve_model(), FaceSettings(), workers=1)
    faces = read_faces(tmp_path / "faces", ["row", "status", "face_source", "faces_found", "box"])

    assert faces["row"].to_list() == manifest["row"].to_list() == list(range(40))
    assert set(faces["status"]) <= {"ok", "no_face", "low_score", "too_small", "unreadable"}
    # Measured on all 1,002 FG-NET photos with the default settings: every one detected (lowest score 0.63).
    assert detection_rate(faces) >= 0.95
    ok = faces.filter(pl.col("status") == "ok")
    assert (ok["box"].struct.field("w") >= 100).all()  # the photos are portraits: the faces are large
