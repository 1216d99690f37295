import math
from pathlib import Path

import polars as pl
import pytest

from agenet_pipeline.datasets import appa_real
from agenet_pipeline.datasets.appa_real import read_appa_real
from agenet_pipeline.datasets.manifest import file_group
from agenet_pipeline_tests.formats import write_appa_split as write_split
from agenet_pipeline_tests.formats import write_jpeg


@pytest.fixture
def appa(tmp_path) -> Path:
    root = tmp_path / "appa-real-release"
    write_split(
        root,
        "train",
        [
            "000000.jpg,36,25.5,4.2,27",
            "000001.jpg,30,20.0,3.0,-3",
            "000002.jpg,30,70.0,3.0,250",
            "000003.jpg,30,20.0,3.0,nan",
            "000004.jpg,30,22.0,3.0,22",  # listed, but the image is not there
            ",30,20.0,3.0,20",
        ],
        images=["000000.jpg", "000001.jpg", "000002.jpg", "000003.jpg"],
    )
    write_split(root, "valid", ["000005.jpg,41,8.25,1.5,9"], images=["000005.jpg"])
    write_split(
        root, "test", ["000006.jpg,12.5,60.0,5.0,58", "000007.jpg,20,,,40"], images=["000006.jpg", "000007.jpg"]
    )
    return root


def by_name(manifest: pl.DataFrame) -> dict[str, dict]:
    return {Path(row["image_path"]).name if row["image_path"] else None: row for row in manifest.iter_rows(named=True)}


def test_real_age_manifest(appa):
    manifest = read_appa_real(appa)
    rows = by_name(manifest)

    assert manifest.height == 9
    assert set(manifest["dataset"]) == {"appa_real"} and set(manifest["age_source"]) == {"real"}
    assert {n: (r["appa_split"], r["status"], r["age"]) for n, r in rows.items()} == {
        "000000.jpg": ("train", "ok", 27.0),
        "000001.jpg": ("train", "label_out_of_range", None),
        "000002.jpg": ("train", "label_out_of_range", None),
        "000003.jpg": ("train", "missing_label", None),
        "000004.jpg": ("train", "missing_file", None),
        None: ("train", "malformed_line", None),
        "000005.jpg": ("valid", "ok", 9.0),
        "000006.jpg": ("test", "ok", 58.0),
        "000007.jpg": ("test", "ok", 40.0),
    }
    assert rows["000001.jpg"]["detail"] == "gt_avg_train.csv:3: real_age='-3'"
    assert rows["000002.jpg"]["detail"] == "gt_avg_train.csv:4: real_age='250'"
    assert math.isnan(rows["000003.jpg"]["real_age"])
    assert rows["000004.jpg"]["detail"] == f"gt_avg_train.csv:6: no file {appa / 'train' / '000004.jpg'}"
    assert rows[None]["detail"] == "gt_avg_train.csv:7: no file_name"


def test_label_columns_are_kept(appa):
    rows = by_name(read_appa_real(appa))

    first = rows["000000.jpg"]
    assert (first["real_age"], first["apparent_age_avg"], first["apparent_age_std"], first["num_ratings"]) == (
        27.0,
        25.5,
        4.2,
        36,
    )
    assert rows["000006.jpg"]["num_ratings"] is None  # 12.5 ratings is not a count
    assert rows["000007.jpg"]["apparent_age_avg"] is None


def test_pre_crops_are_not_rows_and_ok_rows_have_distinct_content_groups(appa):
    manifest = read_appa_real(appa)

    assert not manifest["image_path"].drop_nulls().str.ends_with("_face.jpg").any()
    ok = manifest.filter(pl.col("status") == "ok")
    assert ok["split_group"].str.starts_with("sha256:").all()
    assert ok["split_group"].n_unique() == ok.height


def test_apparent_age_option(appa):
    manifest = read_appa_real(appa, age_label="apparent")
    rows = by_name(manifest)

    assert set(manifest["age_source"]) == {"apparent"}
    assert {n: (r["status"], r["age"]) for n, r in rows.items()} == {
        "000000.jpg": ("ok", 25.5),
        "000001.jpg": ("ok", 20.0),
        "000002.jpg": ("ok", 70.0),
        "000003.jpg": ("ok", 20.0),
        "000004.jpg": ("missing_file", None),
        None: ("malformed_line", None),
        "000005.jpg": ("ok", 8.25),
        "000006.jpg": ("ok", 60.0),
        "000007.jpg": ("missing_label", None),
    }
    assert rows["000007.jpg"]["detail"] == "gt_avg_test.csv:3: apparent_age_avg=''"


def test_an_unknown_age_label_is_refused(appa):
    with pytest.raises(ValueError, match="'guessed'"):
        read_appa_real(appa, age_label="guessed")


def test_a_missing_label_file_is_an_error_naming_it(appa):
    (appa / "gt_avg_valid.csv").unlink()

    with pytest.raises(FileNotFoundError, match="gt_avg_valid.csv"):
        read_appa_real(appa)


def test_a_missing_column_is_an_error_naming_the_file_and_column(appa):
    write_split(
        appa,
        "test",
        ["000006.jpg,12,60.0,5.0"],
        images=[],
        header="file_name,num_ratings,apparent_age_avg,apparent_age_std",
    )

    with pytest.raises(ValueError, match=r"gt_avg_test\.csv: missing column\(s\) real_age"):
        read_appa_real(appa)


def test_detail_names_the_file_line_after_a_blank_line(appa):
    write_split(appa, "valid", ["000005.jpg,41,8.25,1.5,9", "", "000008.jpg,41,8.25,1.5,-3"], images=["000005.jpg"])

    rows = by_name(read_appa_real(appa))

    assert rows["000008.jpg"]["detail"] == "gt_avg_valid.csv:4: real_age='-3'"


def test_files_outside_the_root_are_outside_root_and_not_read(tmp_path, monkeypatch):
    root = tmp_path / "appa-real-release"
    secret = write_jpeg(tmp_path / "elsewhere" / "secret.jpg")
    lines = [
        "000000.jpg,36,25.5,4.2,27",
        "../../elsewhere/secret.jpg,30,20.0,3.0,20",  # `..` in file_name
        f"{secret},30,20.0,3.0,21",  # an absolute file_name
        "000001.jpg,30,20.0,3.0,22",  # a symbolic link out of the root
        "../valid/000005.jpg,30,20.0,3.0,23",  # `..` that stays inside the root
    ]
    write_split(root, "train", lines, images=["000000.jpg"])
    (root / "train" / "000001.jpg").symlink_to(secret)
    write_split(root, "valid", [], images=["000005.jpg"])
    write_split(root, "test", [], images=[])
    read = []
    monkeypatch.setattr(appa_real, "file_group", lambda path: read.append(path) or file_group(path))

    manifest = read_appa_real(root)

    assert manifest.select("real_age", "status").rows() == [
        (27.0, "ok"),
        (20.0, "outside_root"),
        (21.0, "outside_root"),
        (22.0, "outside_root"),
        (23.0, "ok"),
    ]
    outside = manifest.filter(pl.col("status") == "outside_root")
    for line, (path, detail) in enumerate(outside.select("image_path", "detail").rows(), start=3):
        assert detail == f"gt_avg_train.csv:{line}: {path} leads to {secret.resolve()}, " + (
            f"outside the dataset root {root.resolve()}"
        )
    assert [Path(p).resolve() for p in read] == [
        root.resolve() / "train" / "000000.jpg",
        root.resolve() / "valid" / "000005.jpg",
    ]
