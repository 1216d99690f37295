from pathlib import Path

import polars as pl
import pytest

from agenet_pipeline.datasets.adience import parse_age, read_adience
from agenet_pipeline_tests.formats import adience_face as face
from agenet_pipeline_tests.formats import write_folds, write_jpeg


@pytest.fixture
def adience(tmp_path) -> Path:
    root = tmp_path / "adience"
    write_folds(
        root,
        {
            0: [
                face(root, "7153718@N04", 1, "(25, 32)"),
                face(root, "7153718@N04", 2, "35", gender="m"),
                face(root, "7153718@N04", 3, "None", gender="u"),
                face(root, "7153718@N04", 4, "(8, 23"),
                "7153718@N04\t1005_abc_o.jpg\t5",
                face(root, "30601258@N03", 6, "(25, 32)", image=False),
                "",
                face(root, "30601258@N03", 8, "-3"),
                face(root, "30601258@N03", 9, "250"),
                face(root, "30601258@N03", 10, "nan"),
            ],
            3: [face(root, "10044155@N06", 11, "(0, 2)", gender="m")],
        },
    )
    return root


def test_manifest_of_the_fold_files(adience):
    manifest = read_adience(adience)
    rows = {r["face_id"]: r for r in manifest.iter_rows(named=True) if r["face_id"]}
    [malformed] = manifest.filter(pl.col("face_id").is_null()).to_dicts()

    assert manifest.height == 10
    assert set(manifest["dataset"]) == {"adience"}
    assert {k: (r["status"], r["age"], r["age_low"], r["age_high"], r["age_source"]) for k, r in rows.items()} == {
        "1": ("ok", 28.5, 25.0, 32.0, "range"),
        "2": ("ok", 35.0, 35.0, 35.0, "real"),
        "3": ("missing_label", None, None, None, "range"),
        "4": ("malformed_label", None, None, None, "range"),
        "6": ("missing_file", None, 25.0, 32.0, "range"),
        "8": ("label_out_of_range", None, -3.0, -3.0, "real"),
        "9": ("label_out_of_range", None, 250.0, 250.0, "real"),
        "10": ("malformed_label", None, None, None, "range"),
        "11": ("ok", 1.0, 0.0, 2.0, "range"),
    }
    assert (malformed["status"], malformed["fold"], malformed["image_path"]) == ("malformed_line", 0, None)
    assert malformed["detail"] == "fold_0_data.txt:6: expected 12 tab-separated fields, found 3"
    assert rows["3"]["detail"] == "fold_0_data.txt:4: age 'None'"
    assert rows["4"]["detail"] == "fold_0_data.txt:5: age '(8, 23'"
    assert rows["6"]["detail"].startswith("fold_0_data.txt:7: no file ")
    assert rows["10"]["detail"] == "fold_0_data.txt:11: age 'nan'"  # the blank line 8 still counts


def test_fold_user_gender_and_path_columns(adience):
    rows = {r["face_id"]: r for r in read_adience(adience).iter_rows(named=True) if r["face_id"]}

    assert (rows["1"]["fold"], rows["1"]["user_id"], rows["1"]["split_group"]) == (
        0,
        "7153718@N04",
        "adience:7153718@N04",
    )
    assert (rows["11"]["fold"], rows["11"]["user_id"], rows["11"]["split_group"]) == (
        3,
        "10044155@N06",
        "adience:10044155@N06",
    )
    assert [rows[k]["gender"] for k in ("1", "2", "3")] == ["female", "male", None]
    assert rows["1"]["image_path"] == str(
        adience / "faces" / "7153718@N04" / "coarse_tilt_aligned_face.1.1001_abc_o.jpg"
    )
    assert rows["1"]["detail"] is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(25, 32)", (25.0, 32.0)),
        ("( 0 ,2 )", (0.0, 2.0)),
        ("(60, 100)", (60.0, 100.0)),
        ("35", (35.0, 35.0)),
        (" 13 ", (13.0, 13.0)),
        ("None", None),
        ("", None),
        ("(32, 25)", None),
        ("(25, 32", None),
        ("25-32", None),
        ("nan", None),
    ],
)
def test_parse_age(text, expected):
    assert parse_age(text) == expected


def test_a_missing_fold_file_is_an_error_naming_it(adience):
    (adience / "fold_4_data.txt").unlink()

    with pytest.raises(FileNotFoundError, match="fold_4_data.txt"):
        read_adience(adience)


def test_a_fold_file_without_the_header_is_an_error_naming_it(adience):
    (adience / "fold_2_data.txt").write_text(face(adience, "1@N01", 1, "(25, 32)") + "\n")

    with pytest.raises(ValueError, match="fold_2_data.txt: first line is not the Adience header"):
        read_adience(adience)


def test_adience_sample_sample(adience_sample):
    manifest = read_adience(adience_sample)
    lines = sum(
        1
        for fold in range(5)
        for line in (adience_sample / f"fold_{fold}_data.txt").read_text(encoding="utf-8").splitlines()[1:]
        if line.strip()
    )
    counts = dict(manifest["status"].value_counts().rows())
    ok = manifest.filter(pl.col("status") == "ok")

    assert counts["ok"] == 19
    assert counts["missing_file"] > 0
    assert sum(counts.values()) == manifest.height == lines
    assert ok.select("age", "age_low", "age_high").unique().rows() == [(28.5, 25.0, 32.0)]
    assert ok["image_path"].map_elements(lambda p: Path(p).is_file(), return_dtype=pl.Boolean).all()


def test_rows_leading_outside_the_root_are_outside_root(tmp_path):
    root, outside = tmp_path / "adience", tmp_path / "outside"
    (root / "faces" / "u2" / "coarse_tilt_aligned_face.3.x").mkdir(parents=True)
    link = root / "faces" / "u3" / "coarse_tilt_aligned_face.4.1004_abc_o.jpg"
    link.parent.mkdir(parents=True)
    link.symlink_to(write_jpeg(outside / "secret.jpg"))
    write_folds(
        root,
        {
            0: [
                face(root, "u1", 1, "(25, 32)"),
                face(root, str(outside), 2, "(25, 32)"),  # an absolute user_id
                "u2\tx/../../../../outside/secret.jpg\t3\t(25, 32)\tf\t10\t20\t300\t300\t0\t0\t50",  # `..` in the name
                face(root, "u3", 4, "(25, 32)", image=False),  # a symbolic link out of the root
                face(root, "../../outside", 5, "(25, 32)"),  # `..` in user_id
                face(root, "../faces/u6", 6, "(25, 32)"),  # `..` that stays inside the root
            ]
        },
    )

    rows = {r["face_id"]: r for r in read_adience(root).iter_rows(named=True)}

    assert {k: r["status"] for k, r in rows.items()} == {
        "1": "ok",
        "2": "outside_root",
        "3": "outside_root",
        "4": "outside_root",
        "5": "outside_root",
        "6": "ok",
    }
    for line, face_id in enumerate("2345", start=3):
        assert rows[face_id]["detail"].startswith(f"fold_0_data.txt:{line}: {rows[face_id]['image_path']} leads to ")
        assert f"{outside.resolve()}/" in rows[face_id]["detail"] and rows[face_id]["age"] is None
