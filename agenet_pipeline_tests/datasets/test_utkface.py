import os
from pathlib import Path

import polars as pl
import pytest

from agenet_pipeline.datasets import utkface
from agenet_pipeline.datasets.manifest import file_group
from agenet_pipeline.datasets.utkface import parse_name, read_utkface
from agenet_pipeline_tests.formats import write_jpeg


def by_name(manifest: pl.DataFrame) -> dict[str, dict]:
    return {Path(row["image_path"]).name: row for row in manifest.iter_rows(named=True)}


def test_manifest_of_a_folder_with_good_and_malformed_names(tmp_path):
    root = tmp_path / "UTKFace"
    for name in (
        "25_0_2_20170116174525125.jpg.chip.jpg",
        "1_1_4_20161221193016140.jpg.chip.jpg",
        "61_1_20170109142408075.jpg.chip.jpg",
        "61_3_20170109150557335.jpg.chip.jpg",
        "25_0_.jpg.chip.jpg",
        "-3_0_1_20170101000000000.jpg.chip.jpg",
        "250_1_0_20170101000000001.jpg.chip.jpg",
        "sub/40_0_3_20170101000000002.jpg.chip.jpg",
    ):
        write_jpeg(root / name)
    (root / "README.txt").write_text("not an image")

    manifest = read_utkface(root)
    rows = by_name(manifest)

    assert manifest.columns[:7] == ["dataset", "image_path", "age", "age_source", "split_group", "status", "detail"]
    assert manifest.height == 8
    assert set(manifest["dataset"]) == {"utkface"} and set(manifest["age_source"]) == {"real"}
    assert {n: (r["status"], r["age"], r["gender"], r["race"]) for n, r in rows.items()} == {
        "25_0_2_20170116174525125.jpg.chip.jpg": ("ok", 25.0, "male", "asian"),
        "1_1_4_20161221193016140.jpg.chip.jpg": ("ok", 1.0, "female", "other"),
        "61_1_20170109142408075.jpg.chip.jpg": ("ok", 61.0, "female", None),
        "40_0_3_20170101000000002.jpg.chip.jpg": ("ok", 40.0, "male", "indian"),
        "61_3_20170109150557335.jpg.chip.jpg": ("malformed_name", None, None, None),
        "25_0_.jpg.chip.jpg": ("malformed_name", None, None, None),
        "-3_0_1_20170101000000000.jpg.chip.jpg": ("label_out_of_range", None, "male", "black"),
        "250_1_0_20170101000000001.jpg.chip.jpg": ("label_out_of_range", None, "female", "white"),
    }
    assert rows["25_0_2_20170116174525125.jpg.chip.jpg"]["taken_at"] == "20170116174525125"
    assert "61_3_20170109150557335.jpg.chip.jpg" in rows["61_3_20170109150557335.jpg.chip.jpg"]["detail"]
    assert rows["-3_0_1_20170101000000000.jpg.chip.jpg"]["detail"] == "age -3"
    assert rows["250_1_0_20170101000000001.jpg.chip.jpg"]["detail"] == "age 250"

    ok = manifest.filter(pl.col("status") == "ok")
    assert ok["detail"].is_null().all()
    assert ok["split_group"].str.contains(r"^sha256:[0-9a-f]{32}$").all()
    assert ok["split_group"].n_unique() == ok.height
    assert manifest.filter(pl.col("status") != "ok")["split_group"].is_null().all()


def test_identical_files_share_a_split_group(tmp_path):
    first = write_jpeg(tmp_path / "30_0_0_20170101000000000.jpg.chip.jpg")
    (tmp_path / "31_0_0_20170101000000001.jpg.chip.jpg").write_bytes(first.read_bytes())
    write_jpeg(tmp_path / "32_0_0_20170101000000002.jpg.chip.jpg")

    groups = read_utkface(tmp_path).sort("image_path")["split_group"].to_list()

    assert groups[0] == groups[1] != groups[2]


def test_a_file_that_cannot_be_opened_is_unreadable(tmp_path):
    (tmp_path / "30_0_0_20170101000000000.jpg.chip.jpg").symlink_to(tmp_path / "gone.jpg")

    [row] = read_utkface(tmp_path).iter_rows(named=True)

    assert row["status"] == "unreadable"
    assert row["split_group"] is None
    assert "FileNotFoundError" in row["detail"]


@pytest.mark.timeout(20)
def test_a_symlink_loop_is_not_followed(tmp_path):
    root = tmp_path / "UTKFace"
    write_jpeg(root / "30_0_0_20170101000000000.jpg.chip.jpg")
    os.symlink(root, root / "loop", target_is_directory=True)

    manifest = read_utkface(root)

    assert manifest["image_path"].to_list() == [str(root / "30_0_0_20170101000000000.jpg.chip.jpg")]


def test_non_ascii_names(tmp_path):
    root = tmp_path / "Gesichter_äöü_顔"
    good = write_jpeg(root / "30_1_2_20170101000000000.jpg.chip.jpg")
    odd = write_jpeg(root / "größe_30.jpg")

    rows = {row["image_path"]: row for row in read_utkface(root).iter_rows(named=True)}

    assert rows[str(good)]["status"] == "ok" and rows[str(good)]["age"] == 30.0
    assert rows[str(odd)]["status"] == "malformed_name"
    assert "größe_30.jpg" in rows[str(odd)]["detail"]


def test_a_missing_root_is_an_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_utkface(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "name",
    [
        "30_2_0_20170101000000000.jpg.chip.jpg",
        "30_0_5_20170101000000000.jpg.chip.jpg",
        "30_0_0_20170101000000000.jpg",
        "1234_0_0_20170101000000000.jpg.chip.jpg",
        "x_0_0_20170101000000000.jpg.chip.jpg",
    ],
)
def test_names_outside_the_pattern_do_not_parse(name):
    assert parse_name(name) is None


def test_utkface_part1_part1(utkface_part1):
    manifest = read_utkface(utkface_part1)
    rows = by_name(manifest)

    assert manifest.height == 9780
    assert manifest["status"].value_counts().sort("status").rows() == [("malformed_name", 1), ("ok", 9779)]
    assert rows["61_3_20170109150557335.jpg.chip.jpg"]["status"] == "malformed_name"
    no_race = rows["61_1_20170109142408075.jpg.chip.jpg"]
    assert (no_race["status"], no_race["age"], no_race["gender"], no_race["race"]) == ("ok", 61.0, "female", None)
    assert rows["14_0_0_2017011022340900.jpg.chip.jpg"]["status"] == "ok"


def test_a_link_to_a_file_outside_the_root_is_outside_root_and_not_read(tmp_path, monkeypatch):
    root = tmp_path / "UTKFace"
    inside = write_jpeg(root / "30_0_0_20170101000000000.jpg.chip.jpg")
    secret = write_jpeg(tmp_path / "elsewhere" / "secret.jpg")
    (root / "31_0_0_20170101000000001.jpg.chip.jpg").symlink_to(secret)
    (root / "sub").mkdir()
    (root / "sub" / "32_0_0_20170101000000002.jpg.chip.jpg").symlink_to(inside)  # a link that stays inside
    read = []
    monkeypatch.setattr(utkface, "file_group", lambda path: read.append(path.name) or file_group(path))

    rows = by_name(read_utkface(root))

    assert {name: row["status"] for name, row in rows.items()} == {
        "30_0_0_20170101000000000.jpg.chip.jpg": "ok",
        "31_0_0_20170101000000001.jpg.chip.jpg": "outside_root",
        "32_0_0_20170101000000002.jpg.chip.jpg": "ok",
    }
    outside = rows["31_0_0_20170101000000001.jpg.chip.jpg"]
    assert outside["detail"] == f"{root / '31_0_0_20170101000000001.jpg.chip.jpg'} leads to {secret.resolve()}, " + (
        f"outside the dataset root {root.resolve()}"
    )
    assert (outside["age"], outside["split_group"]) == (None, None)
    assert "31_0_0_20170101000000001.jpg.chip.jpg" not in read  # not even hashed
