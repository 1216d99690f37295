import shutil
from pathlib import Path

import polars as pl
import pytest

from agenet_pipeline.datasets import labels_table
from agenet_pipeline.datasets.fgnet import read_fgnet
from agenet_pipeline.datasets.labels_table import read_labels_table
from agenet_pipeline.datasets.manifest import MANIFEST_SCHEMA, file_group, number_rows
from agenet_pipeline.faces.detector import resolve_model
from agenet_pipeline.faces.settings import FaceSettings
from agenet_pipeline.faces.sharded import run_face_stage
from agenet_pipeline.faces.storage import read_faces
from agenet_pipeline_tests.formats import write_jpeg, write_labels_table


def table_lines(root: Path, outside: Path) -> list[str]:
    """One line per reason (the header is line 1, so these are lines 2 to 19)."""
    return [
        "photos/a.jpg,25,p1,F",
        '"photos/smith, john.jpg",40.5,p1,m',  # a quoted path with a comma
        "photos/b.jpg,7,,",
        "",  # blank lines are skipped
        "   ",
        ",30,p2,f",  # no path
        "photos/c.jpg,30,p2",  # a field short
        "photos/e.jpg,thirty,,",
        "photos/f.jpg,,,",
        "photos/g.jpg,250,,",
        "photos/h.jpg,-3,,",
        "photos/missing.jpg,30,,",
        "photos/folder.jpg,30,,",  # a folder, not a file
        "photos/../photos/a.jpg,60,p9,m",  # the file of line 2 again
        f"{root / 'photos' / 'd.jpg'},33,,other",  # absolute, but inside the root
        "../outside/secret.jpg,30,,",
        f"{outside / 'secret.jpg'},30,,",
        "photos/link.jpg,30,,",  # a symbolic link leading out
    ]


@pytest.fixture
def dataset(tmp_path) -> tuple[Path, Path]:
    """(root holding labels.csv and photos/, the outside folder)."""
    root, outside = tmp_path / "mine", tmp_path / "outside"
    for name in ("a.jpg", "smith, john.jpg", "b.jpg", "c.jpg", "e.jpg", "f.jpg", "g.jpg", "h.jpg", "d.jpg"):
        write_jpeg(root / "photos" / name)
    (root / "photos" / "folder.jpg").mkdir()
    (root / "photos" / "link.jpg").symlink_to(write_jpeg(outside / "secret.jpg"))
    write_labels_table(root / "labels.csv", table_lines(root, outside), bom=True, line_end="\r\n")
    return root, outside


def by_line(manifest: pl.DataFrame) -> dict[int, dict]:
    """Rows by the CSV line their detail names; usable rows (no detail) by their file name."""
    return {
        int(row["detail"].split(":")[1]) if row["detail"] else Path(row["image_path"]).name: row
        for row in manifest.iter_rows(named=True)
    }


def test_every_line_is_a_row_usable_or_with_its_reason(dataset):
    root, outside = dataset

    manifest = read_labels_table(root / "labels.csv")
    rows = by_line(manifest)

    assert manifest.columns == [*MANIFEST_SCHEMA, "person", "gender"]
    assert manifest.height == 16  # 18 lines, 2 of them blank
    assert set(manifest["dataset"]) == {"labels_table"} and set(manifest["age_source"]) == {"real"}
    assert {key: (row["status"], row["age"]) for key, row in rows.items()} == {
        "a.jpg": ("ok", 25.0),
        "smith, john.jpg": ("ok", 40.5),
        "b.jpg": ("ok", 7.0),
        7: ("malformed_line", None),
        8: ("malformed_line", None),
        9: ("malformed_label", None),
        10: ("missing_label", None),
        11: ("label_out_of_range", None),
        12: ("label_out_of_range", None),
        13: ("missing_file", None),
        14: ("unreadable", None),
        15: ("duplicate_row", None),
        "d.jpg": ("ok", 33.0),
        17: ("outside_root", None),
        18: ("outside_root", None),
        19: ("outside_root", None),
    }
    assert rows[7]["detail"] == "labels.csv:7: path ''" and rows[7]["image_path"] is None
    assert rows[8]["detail"] == "labels.csv:8: expected 4 fields, found 3"
    assert rows[9]["detail"] == "labels.csv:9: age 'thirty' is not a number"
    assert rows[10]["detail"] == "labels.csv:10: no age"
    assert rows[11]["detail"] == "labels.csv:11: age '250'"
    assert rows[13]["detail"] == f"labels.csv:13: no file {root / 'photos' / 'missing.jpg'}"
    assert rows[14]["detail"].startswith("labels.csv:14: IsADirectoryError")
    assert rows[15]["detail"] == "labels.csv:15: 'photos/../photos/a.jpg' is listed before, at labels.csv:2"
    assert rows[19]["detail"] == (
        f"labels.csv:19: {root / 'photos' / 'link.jpg'} leads to {(outside / 'secret.jpg').resolve()}, "
        f"outside the dataset root {root.resolve()}"
    )
    assert rows["a.jpg"]["image_path"] == str(root / "photos" / "a.jpg")


def test_person_is_the_split_group_else_the_content_hash(dataset):
    root, _ = dataset

    rows = by_line(read_labels_table(root / "labels.csv"))

    assert rows["a.jpg"]["split_group"] == rows["smith, john.jpg"]["split_group"] == "labels_table:p1"
    assert rows["b.jpg"]["split_group"] == file_group(root / "photos" / "b.jpg")[0]
    assert rows["b.jpg"]["split_group"].startswith("sha256:")
    assert {
        key: (rows[key]["person"], rows[key]["gender"]) for key in ("a.jpg", "smith, john.jpg", "b.jpg", "d.jpg")
    } == {
        "a.jpg": ("p1", "female"),
        "smith, john.jpg": ("p1", "male"),
        "b.jpg": (None, None),
        "d.jpg": (None, "other"),
    }
    assert all(row["split_group"] is None for key, row in rows.items() if isinstance(key, int))


@pytest.mark.parametrize(("bom", "line_end"), [(False, "\n"), (True, "\n"), (False, "\r\n")])
def test_byte_order_mark_and_line_ends_do_not_change_the_rows(dataset, bom, line_end):
    root, outside = dataset
    plain = write_labels_table(root / "plain.csv", table_lines(root, outside), bom=bom, line_end=line_end)

    expected = read_labels_table(root / "labels.csv").with_columns(
        pl.col("detail").str.replace_all("labels.csv", "plain.csv", literal=True)
    )
    assert read_labels_table(plain).equals(expected)


def test_rows_leading_outside_are_not_read(dataset, monkeypatch):
    root, outside = dataset
    read = []
    monkeypatch.setattr(labels_table, "file_group", lambda path: read.append(path) or file_group(path))

    manifest = read_labels_table(root)

    assert manifest.filter(pl.col("status") == "outside_root").height == 3
    assert not [path for path in read if path.resolve().is_relative_to(outside.resolve())]
    assert len(read) == 5  # the four usable files and the folder


def test_a_folder_means_its_labels_csv(dataset, tmp_path):
    root, _ = dataset

    assert read_labels_table(root).equals(read_labels_table(root / "labels.csv"))
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'outside' / 'labels.csv'} is not a file"):
        read_labels_table(tmp_path / "outside")


@pytest.mark.parametrize(("header", "missing"), [("file,age", "path"), ("path,years,person", "age")])
def test_a_missing_column_is_an_error_naming_the_file_and_column(tmp_path, header, missing):
    csv_path = write_labels_table(tmp_path / "labels.csv", ["a.jpg,30"], header=header)

    with pytest.raises(ValueError, match=rf"^{csv_path}: missing column\(s\) {missing}$"):
        read_labels_table(csv_path)


def test_header_names_may_have_spaces_and_extra_columns_are_ignored(tmp_path):
    write_jpeg(tmp_path / "a.jpg")
    csv_path = write_labels_table(tmp_path / "ages.csv", ["a.jpg, 30 ,AgeDB"], header="path, age ,source")

    [row] = read_labels_table(csv_path).iter_rows(named=True)

    assert (row["status"], row["age"], row["person"]) == ("ok", 30.0, None)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "empty file"),
        (b"path,age,age\na.jpg,1,2\n", "column(s) age appear more than once"),
        ("path,age\nbébé.jpg,1\n".encode("latin-1"), "not UTF-8 text"),
    ],
)
def test_a_table_that_cannot_be_read_is_an_error_naming_it(tmp_path, content, problem):
    csv_path = tmp_path / "labels.csv"
    csv_path.write_bytes(content)

    with pytest.raises(ValueError, match=str(csv_path)) as error:
        read_labels_table(csv_path)
    assert problem in str(error.value)


def test_real_photos_through_the_face_stage(tmp_path, fgnet):
    """A table written for a few real FG-NET photos: every row reaches the face table once, `ok` or with a reason."""
    photos = read_fgnet(fgnet)[::100]
    root = tmp_path / "mine"
    (root / "photos").mkdir(parents=True)
    lines = []
    for row in photos.iter_rows(named=True):
        name = Path(row["image_path"]).name
        shutil.copy(row["image_path"], root / "photos" / name)
        lines.append(f"photos/{name},{row['age']:g},{row['person']},")
    lines += ["photos/gone.jpg,30,,", "photos/x.jpg,old,,", f"{photos['image_path'][0]},30,,"]
    manifest = number_rows(read_labels_table(write_labels_table(root / "labels.csv", lines)))

    run_face_stage(manifest, tmp_path / "faces", resolve_model(), FaceSettings(), workers=1)
    faces = read_faces(tmp_path / "faces", ["row", "status", "face_source"])

    assert faces["row"].to_list() == manifest["row"].to_list()
    assert faces["status"].to_list()[-3:] == ["missing_file", "malformed_label", "outside_root"]
    detected = faces.head(photos.height)
    assert detected["status"].to_list() == ["ok"] * photos.height  # FG-NET: 1,002 of 1,002 detected
    assert set(detected["face_source"]) == {"detector"}
