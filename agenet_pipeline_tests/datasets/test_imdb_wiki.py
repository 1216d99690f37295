import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from agenet_pipeline.datasets.imdb_wiki import birth_year, read_imdb_wiki, sample_usable
from agenet_pipeline_tests.formats import IMDB_FIELDS as FIELDS
from agenet_pipeline_tests.formats import NAN, write_jpeg, write_mat
from agenet_pipeline_tests.formats import imdb_record as record


@pytest.fixture
def imdb(tmp_path) -> Path:
    write_mat(
        tmp_path / "imdb_crop" / "imdb.mat",
        [
            record("01/nm0000001_rm1_1970-6-15_2000.jpg", born=1970, taken=2000),
            record("01/nm0000001_rm2_1970-6-15_2010.jpg", born=1970, taken=2010),
            record("02/nm0000002_rm3_1980-6-15_2005.jpg", born=1980, taken=2005, gender=0.0, face_score=float("-inf")),
            record("03/nm0000003_rm4_1960-6-15_2001.jpg", born=1960, taken=2001, gender=NAN, second_face_score=1.7),
            record("04/nm0000004_rm5_2003-6-15_2000.jpg", born=2003, taken=2000),  # born after the photo: age -3
            record("05/nm0000005_rm6_1760-6-15_2010.jpg", born=1760, taken=2010),  # age 250
            record("06/nm0000006_rm7_1950-6-15_NaN.jpg", born=1950, taken=NAN),
            record("07/nm0000007_rm8_0-0-0_2000.jpg", born=None, taken=2000),  # dob 0: no birth date
            record("08/nm0000008_rm9_1990-6-15_2015.jpg", born=1990, taken=2015, image=False),
            record("09/portrait.jpg", born=1985, taken=2010, gender=0.0),
        ],
    )
    return tmp_path


def test_manifest_of_one_mat_file(imdb):
    manifest = read_imdb_wiki(imdb)
    rows = {Path(r["image_path"]).name: r for r in manifest.iter_rows(named=True)}

    assert manifest.height == 10
    assert set(manifest["dataset"]) == {"imdb_wiki"} and set(manifest["source"]) == {"imdb"}
    assert {n: (r["status"], r["age"]) for n, r in rows.items()} == {
        "nm0000001_rm1_1970-6-15_2000.jpg": ("ok", 30.0),
        "nm0000001_rm2_1970-6-15_2010.jpg": ("ok", 40.0),
        "nm0000002_rm3_1980-6-15_2005.jpg": ("no_face", None),
        "nm0000003_rm4_1960-6-15_2001.jpg": ("second_face", None),
        "nm0000004_rm5_2003-6-15_2000.jpg": ("label_out_of_range", None),
        "nm0000005_rm6_1760-6-15_2010.jpg": ("label_out_of_range", None),
        "nm0000006_rm7_1950-6-15_NaN.jpg": ("missing_label", None),
        "nm0000007_rm8_0-0-0_2000.jpg": ("missing_label", None),
        "nm0000008_rm9_1990-6-15_2015.jpg": ("missing_file", None),
        "portrait.jpg": ("ok", 25.0),
    }
    assert rows["nm0000002_rm3_1980-6-15_2005.jpg"]["detail"] == "imdb.mat[2]: face_score -inf"
    assert rows["nm0000003_rm4_1960-6-15_2001.jpg"]["detail"] == "imdb.mat[3]: second_face_score 1.70"
    assert rows["nm0000004_rm5_2003-6-15_2000.jpg"]["detail"] == "imdb.mat[4]: photo_taken 2000 - birth_year 2003"
    assert rows["nm0000008_rm9_1990-6-15_2015.jpg"]["detail"].startswith("imdb.mat[8]: no file ")
    assert rows["nm0000008_rm9_1990-6-15_2015.jpg"]["image_path"] == str(
        imdb / "imdb_crop" / "08" / "nm0000008_rm9_1990-6-15_2015.jpg"
    )


def test_person_gender_and_dates(imdb):
    rows = read_imdb_wiki(imdb).sort("image_path").to_dicts()

    assert [r["person_id"] for r in rows] == [*(f"nm000000{k}" for k in (1, 1, 2, 3, 4, 5, 6, 7, 8)), None]
    assert [r["split_group"] for r in rows[:3]] == ["imdb:nm0000001", "imdb:nm0000001", "imdb:nm0000002"]
    assert rows[-1]["split_group"] is None  # no person in the name: the face stage groups it by content
    assert [r["gender"] for r in rows[:4]] == ["male", "male", "female", None]
    assert [(r["birth_year"], r["photo_taken"]) for r in rows[:2]] == [(1970, 2000), (1970, 2010)]
    assert (rows[6]["birth_year"], rows[6]["photo_taken"]) == (1950, None)
    assert rows[7]["birth_year"] is None
    assert rows[2]["face_score"] == float("-inf") and np.isnan(rows[0]["second_face_score"])


@pytest.mark.parametrize(
    ("serial", "year"),
    [(719529.0, 1970), (719528.9, 1969), (730486.0, 2000), (0.0, None), (NAN, None), (float("inf"), None)],
)
def test_birth_year_of_a_matlab_serial_date(serial, year):
    assert birth_year(serial) == year


def test_imdb_and_wiki_files_in_subfolders_are_both_read(tmp_path):
    write_mat(tmp_path / "imdb_crop" / "imdb.mat", [record("01/nm0000001_rm1.jpg", born=1970, taken=2000)])
    write_mat(tmp_path / "wiki_crop" / "wiki.mat", [record("11/123_1970-6-15_2000.jpg", born=1975, taken=2000)])

    manifest = read_imdb_wiki(tmp_path).sort("source")

    assert manifest.select("source", "status", "age").rows() == [("imdb", "ok", 30.0), ("wiki", "ok", 25.0)]


def test_no_mat_file_is_an_error_naming_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path))):
        read_imdb_wiki(tmp_path)


def test_a_missing_field_is_an_error_naming_the_file(tmp_path):
    mat = write_mat(
        tmp_path / "imdb.mat",
        [record("a/nm1_x.jpg", born=1970, taken=2000)],
        fields=[f for f in FIELDS if f != "face_score"],
    )

    with pytest.raises(ValueError, match=rf"{re.escape(str(mat))}: .*face_score"):
        read_imdb_wiki(tmp_path)


def test_a_missing_struct_is_an_error_naming_the_file(tmp_path):
    mat = write_mat(tmp_path / "imdb.mat", [record("a/nm1_x.jpg", born=1970, taken=2000)], struct_name="wiki")

    with pytest.raises(ValueError, match=rf"{re.escape(str(mat))}: no struct named 'imdb'"):
        read_imdb_wiki(tmp_path)


def test_a_damaged_mat_file_is_an_error_naming_it(tmp_path):
    (tmp_path / "imdb.mat").write_bytes(b"not a MATLAB file")

    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "imdb.mat"))):
        read_imdb_wiki(tmp_path)


@pytest.fixture
def many(tmp_path) -> pl.DataFrame:
    """A manifest with 3 rejected rows and 12 usable ones."""
    records = [record(f"{k:02d}/nm{k:07d}_rm{k}.jpg", born=1970, taken=1990 + k) for k in range(12)]
    records += [
        record("90/nm0000090_rm90.jpg", born=1970, taken=2000, face_score=float("-inf")),
        record("91/nm0000091_rm91.jpg", born=1970, taken=2000, second_face_score=2.0),
        record("92/nm0000092_rm92.jpg", born=1970, taken=2000, image=False),
    ]
    write_mat(tmp_path / "imdb.mat", records)
    return read_imdb_wiki(tmp_path)


def test_sample_usable_keeps_every_rejected_row_and_n_usable_ones(many):
    sampled, left_out = sample_usable(many, 5, seed=0)

    assert left_out == 7
    assert sampled.height == 8
    assert (
        sampled.filter(pl.col("status") != "ok")
        .sort("image_path")
        .equals(many.filter(pl.col("status") != "ok").sort("image_path"))
    )
    usable = sampled.filter(pl.col("status") == "ok")
    assert usable.height == 5 and usable["image_path"].n_unique() == 5
    assert usable["image_path"].is_in(many["image_path"].to_list()).all()


def test_sample_usable_is_seeded(many):
    def chosen(seed):
        return sample_usable(many, 5, seed=seed)[0].filter(pl.col("status") == "ok")["image_path"].to_list()

    assert chosen(0) == chosen(0)
    assert chosen(0) != chosen(1)


@pytest.mark.parametrize("size", [None, 12, 50])
def test_sample_usable_keeps_everything_when_there_are_not_more_usable_rows(many, size):
    sampled, left_out = sample_usable(many, size)

    assert left_out == 0
    assert sampled.equals(many)


def test_full_paths_outside_the_root_are_outside_root(tmp_path):
    root = tmp_path / "imdb-wiki"
    secret = write_jpeg(tmp_path / "elsewhere" / "nm0000009_secret.jpg")
    mat = write_mat(
        root / "imdb_crop" / "imdb.mat",
        [
            record("01/nm0000001_rm1_1970-6-15_2000.jpg", born=1970, taken=2000),
            record("../../elsewhere/nm0000009_secret.jpg", born=1970, taken=2001, image=False),  # `..`
            record(str(secret), born=1970, taken=2002, image=False),  # an absolute full_path
            record("02/nm0000002_rm2_1970-6-15_2003.jpg", born=1970, taken=2003, image=False),  # a link out
            record("../imdb_crop/03/nm0000003_rm3_1970-6-15_2004.jpg", born=1970, taken=2004),  # stays inside
        ],
    )
    (mat.parent / "02").mkdir()
    (mat.parent / "02" / "nm0000002_rm2_1970-6-15_2003.jpg").symlink_to(secret)

    manifest = read_imdb_wiki(root)

    assert manifest.select("photo_taken", "status").rows() == [
        (2000, "ok"),
        (2001, "outside_root"),
        (2002, "outside_root"),
        (2003, "outside_root"),
        (2004, "ok"),
    ]
    outside = manifest.filter(pl.col("status") == "outside_root")
    for index, (path, detail, age) in enumerate(outside.select("image_path", "detail", "age").rows(), start=1):
        assert detail == f"imdb.mat[{index}]: {path} leads to {secret.resolve()}, " + (
            f"outside the dataset root {root.resolve()}"
        )
        assert age is None
