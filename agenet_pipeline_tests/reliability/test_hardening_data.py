"""Damaged face shards and paths outside a dataset's root (issue 14).

A face shard damaged inside (its footer, and so its fingerprint, intact) is rebuilt by the next run of the face
stage, not reused, and an error from reading one names the file. No dataset reader reads outside its root.
"""

import hashlib
import shutil
from pathlib import Path

import cv2
import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
import scipy.io

from agenet_pipeline.datasets.adience import read_adience
from agenet_pipeline.datasets.appa_real import read_appa_real
from agenet_pipeline.datasets.imdb_wiki import read_imdb_wiki
from agenet_pipeline.datasets.manifest import number_rows, outside_root
from agenet_pipeline.datasets.utkface import read_utkface
from agenet_pipeline.demo.writers import demo_dataset
from agenet_pipeline.faces.detector import resolve_model
from agenet_pipeline.faces.settings import FaceSettings
from agenet_pipeline.faces.sharded import run_face_stage
from agenet_pipeline.faces.storage import (
    SETTINGS_FILE,
    CorruptShardError,
    checksum_path,
    fingerprint_of,
    naming_damaged_shards,
    scan_faces,
    shard_paths,
)
from agenet_pipeline.model.records import write_shards

SETTINGS = FaceSettings(crop_size=64)
SHARD_SIZE = 4


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = demo_dataset(tmp_path_factory.mktemp("demo"), "utkface", count=8)
    return number_rows(read_utkface(root))  # 8 faces + 4 deliberate problems: 3 shards of 4


@pytest.fixture(scope="module")
def written(manifest, tmp_path_factory):
    folder = tmp_path_factory.mktemp("faces")
    run_face_stage(manifest, folder, resolve_model(), SETTINGS, shard_size=SHARD_SIZE)
    return folder


@pytest.fixture
def faces(written, tmp_path):
    """A fresh copy of the face shards written once for the module."""
    return shutil.copytree(written, tmp_path / "faces")


def column_chunk(path, name) -> tuple[int, int]:
    """Where a column's pages start in a one-row-group Parquet file, and how many bytes they take."""
    meta = pq.ParquetFile(path).metadata.row_group(0)
    [chunk] = [meta.column(i) for i in range(meta.num_columns) if meta.column(i).path_in_schema == name]
    return chunk.dictionary_page_offset or chunk.data_page_offset, chunk.total_compressed_size


def damage(path, at: int, length: int = 8) -> None:
    data = bytearray(path.read_bytes())
    data[at : at + length] = bytes(b ^ 0xFF for b in data[at : at + length])
    path.write_bytes(bytes(data))


def damage_the_crops(path) -> None:
    """Flip bytes in the middle of the crops, the bulk of a shard: the footer and its fingerprint stay intact."""
    start, size = column_chunk(path, "crop_jpeg")
    fingerprint = fingerprint_of(path)
    damage(path, start + size // 2)
    assert fingerprint_of(path) == fingerprint


def test_a_shard_damaged_inside_is_rebuilt_and_the_others_reused(manifest, faces):
    shards = shard_paths(faces)
    assert len(shards) == 3
    damaged = shards[1]
    damage_the_crops(damaged)
    untouched = {path: path.stat().st_mtime_ns for path in (shards[0], shards[2])}

    run = run_face_stage(manifest, faces, resolve_model(), SETTINGS, shard_size=SHARD_SIZE)

    assert (run.shards_reused, run.rows_processed) == (2, SHARD_SIZE)
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in untouched.items())
    crops = scan_faces(faces, ["row", "status", "crop_jpeg", "crop_sha256"]).collect()
    assert crops["row"].to_list() == manifest["row"].to_list()
    usable = crops.filter(pl.col("status") == "ok")
    assert usable.height >= 8
    for jpeg, sha256 in usable.select("crop_jpeg", "crop_sha256").iter_rows():
        assert hashlib.sha256(jpeg).hexdigest() == sha256
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (64, 64, 3)
    # and the rebuilt shard is trusted again
    assert run_face_stage(manifest, faces, resolve_model(), SETTINGS, shard_size=SHARD_SIZE).shards_reused == 3


def test_a_shard_without_its_checksum_is_rebuilt(manifest, faces):
    checksum_path(shard_paths(faces)[2]).unlink()  # as after a crash between the shard and its checksum
    run = run_face_stage(manifest, faces, resolve_model(), SETTINGS, shard_size=SHARD_SIZE)
    assert (run.shards_reused, run.rows_processed) == (2, manifest.height - 2 * SHARD_SIZE)
    assert checksum_path(shard_paths(faces)[2]).exists()


def test_the_checksums_of_shards_past_the_end_go_with_them(manifest, faces):
    run_face_stage(manifest.head(SHARD_SIZE), faces, resolve_model(), SETTINGS, shard_size=SHARD_SIZE)
    assert sorted(p.name for p in faces.iterdir()) == [
        SETTINGS_FILE,
        "shard-00000.parquet",
        "shard-00000.parquet.sha256",
    ]


def test_an_error_reading_a_damaged_shard_names_the_file(faces):
    damaged = shard_paths(faces)[1]
    start, _ = column_chunk(damaged, "image_path")
    damage(damaged, start, 4)  # a page header: the reader fails, without saying which file
    with pytest.raises(Exception) as plain:
        scan_faces(faces).collect()
    assert str(damaged) not in str(plain.value)

    with pytest.raises(CorruptShardError, match=f"^{damaged}: ") as named, naming_damaged_shards(faces):
        scan_faces(faces).collect()
    assert isinstance(named.value.__cause__, plain.type)  # the reader's own error, kept as the cause


def test_an_error_no_damaged_shard_explains_is_left_as_it_is(faces):
    with pytest.raises(pl.exceptions.ColumnNotFoundError) as error, naming_damaged_shards(faces):
        scan_faces(faces, ["no_such_column"]).collect()
    assert any(str(faces) in note for note in error.value.__notes__)


def test_training_shards_refuse_crops_from_a_damaged_shard_and_name_it(faces, tmp_path):
    damaged = shard_paths(faces)[1]
    damage_the_crops(damaged)  # silently wrong crops: neither Polars nor PyArrow notices
    assert scan_faces(faces, ["crop_jpeg"]).collect().height == 12
    rows = scan_faces(faces, ["row", "status", "age", "crop_bytes"]).filter(pl.col("status") == "ok").collect()
    rows = rows.with_columns(bin=pl.lit(0, pl.Int64))
    with pytest.raises(CorruptShardError, match=f"^{damaged}: .*SHA-256"):
        write_shards(rows, "utkface", faces, tmp_path / "tfrecords", "train-utkface")
    assert not list((tmp_path / "tfrecords").glob("*.tfrecord"))


ADIENCE_FIELDS = "(25, 32)\tf\t10\t20\t300\t300\t0\t0\t50"


def escape_every_reader(folder: Path, secret: Path) -> dict[str, Path]:
    """The four demo datasets, each with rows that lead to `secret`, a photo outside every root; their roots."""
    roots = {name: demo_dataset(folder, name, count=8) for name in ("utkface", "appa_real", "imdb_wiki", "adience")}
    relative = Path("..") / ".." / secret.relative_to(folder)  # from a folder two levels below `folder`

    (roots["utkface"] / "UTKFace" / "30_0_0_20170101000000000.jpg.chip.jpg").symlink_to(secret)

    with open(roots["appa_real"] / "gt_avg_train.csv", "a") as labels:
        labels.write(f"{relative},30,25.0,3.0,25\n{secret},30,25.0,3.0,25\nlink.jpg,30,25.0,3.0,25\n")
    (roots["appa_real"] / "train" / "link.jpg").symlink_to(secret)

    wiki = roots["imdb_wiki"] / "wiki_crop"
    (wiki / "01").mkdir(parents=True)
    (wiki / "01" / "nm0000001_link.jpg").symlink_to(secret)
    full_path = np.empty((1, 3), dtype=object)
    full_path[0, :] = [np.array([str(relative)]), np.array([str(secret)]), np.array(["01/nm0000001_link.jpg"])]
    fields = {"dob": 719529.0 + 365 * 30, "photo_taken": 2010.0, "gender": 1.0, "face_score": 3.0}
    struct = {key: np.full((1, 3), value) for key, value in fields.items()}
    scipy.io.savemat(
        wiki / "wiki.mat", {"wiki": {**struct, "full_path": full_path, "second_face_score": np.full((1, 3), np.nan)}}
    )

    faces = roots["adience"] / "faces"
    shutil.copy(secret, secret.parent / "coarse_tilt_aligned_face.1.a.jpg")
    (faces / "u1").mkdir()
    (faces / "u1" / "coarse_tilt_aligned_face.2.b.jpg").symlink_to(secret)
    (faces / "u2" / "coarse_tilt_aligned_face.3.c").mkdir(parents=True)
    with open(roots["adience"] / "fold_0_data.txt", "a") as fold:
        fold.write(f"{secret.parent}\ta.jpg\t1\t{ADIENCE_FIELDS}\n")  # an absolute user_id
        fold.write(f"../../{secret.parent.name}\ta.jpg\t1\t{ADIENCE_FIELDS}\n")  # `..` in user_id
        fold.write(f"u1\tb.jpg\t2\t{ADIENCE_FIELDS}\n")  # a symbolic link out of the root
        fold.write(f"u2\tc/../../../../{secret.parent.name}/{secret.name}\t3\t{ADIENCE_FIELDS}\n")  # `..` in the name
    return roots


def test_no_reader_reads_outside_its_root(tmp_path):
    secret = tmp_path / "private" / "secret.jpg"
    secret.parent.mkdir()
    assert cv2.imwrite(str(secret), np.full((64, 64, 3), 128, np.uint8))
    roots = escape_every_reader(tmp_path, secret)
    readers = {"utkface": read_utkface, "appa_real": read_appa_real, "imdb_wiki": read_imdb_wiki}
    escapes = {"utkface": 1, "appa_real": 3, "imdb_wiki": 3, "adience": 4}

    for name, root in roots.items():
        manifest = (readers.get(name) or read_adience)(root)
        ok = manifest.filter(pl.col("status") == "ok")
        assert ok.height > 0
        assert all(Path(path).resolve().is_relative_to(root.resolve()) for path in ok["image_path"]), name
        outside = manifest.filter(pl.col("status") == "outside_root")
        assert outside.height == escapes[name], name
        for path, detail in outside.select("image_path", "detail").rows():
            assert f"{path} leads to {secret.parent.resolve()}/" in detail and str(root.resolve()) in detail


def test_a_path_that_cannot_be_resolved_is_left_to_the_read(tmp_path):
    (tmp_path / "loop.jpg").symlink_to(tmp_path / "loop.jpg")
    assert outside_root(tmp_path, tmp_path / "loop.jpg") is None  # the read fails on the loop
    assert outside_root(tmp_path, tmp_path / "nul\x00.jpg") is None  # no file can be opened by this name
    assert outside_root(tmp_path, tmp_path / "absent.jpg") is None  # the read finds no file
    assert outside_root(tmp_path, tmp_path / "loop.jpg" / ".." / ".." / "x.jpg").endswith(f"root {tmp_path.resolve()}")
    assert outside_root(tmp_path, tmp_path / ".." / "absent.jpg").endswith(f"root {tmp_path.resolve()}")
