"""Files and tables in the formats the pipeline reads, for the tests: each dataset's on-disk layout, photos,
TFRecord shards and label tables. The one home of the tests' format writers; the IMDB `.mat` and the drawn
faces come from the demo's own writers."""

import datetime as dt
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import polars as pl
from hypothesis import strategies as st

from agenet_pipeline.core.ages import SEED_BINS
from agenet_pipeline.datasets import adience
from agenet_pipeline.demo.synthetic_faces import draw_face
from agenet_pipeline.demo.writers import write_imdb_mat

# Photos


def write_jpeg(path: Path) -> Path:
    """A tiny JPEG whose pixels, and so whose content hash, differ from one path to another."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(zlib.crc32(str(path).encode())).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", pixels)
    assert ok
    path.write_bytes(data.tobytes())
    return path


def jpeg(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


GROUP_AGES = (8, 35, 70)


def group_photo() -> np.ndarray:
    """Three drawn people side by side, each in a 200-pixel third of the photo (600x200)."""
    rng = np.random.default_rng(3)
    return np.concatenate([draw_face(age, rng, 200) for age in GROUP_AGES], axis=1)


def empty_scene() -> np.ndarray:
    """A photo with no face: a colour ramp."""
    ramp = np.linspace(0, 255, 240, dtype=np.float32)
    return np.stack([np.tile(ramp, (180, 1)), np.tile(ramp[::-1], (180, 1)), np.full((180, 240), 90.0)], -1).astype(
        np.uint8
    )


def write_allowed_folder(parent: Path) -> Path:
    """`parent/allowed`, a folder a served model may read (a photo in a subfolder, a link leading out of it), beside
    `parent/secret.jpg`, a photo it may not."""
    (parent / "secret.jpg").write_bytes(jpeg(group_photo()))
    folder = parent / "allowed"
    (folder / "photos").mkdir(parents=True)
    (folder / "photos" / "group.jpg").write_bytes(jpeg(group_photo()))
    (folder / "link_out.jpg").symlink_to(parent / "secret.jpg")
    return folder


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares its size but whose pixels would take gigabytes: the bomb guard must refuse it first."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


# IMDB-WIKI

NAN = float("nan")
IMDB_FIELDS = ("dob", "photo_taken", "full_path", "gender", "face_score", "second_face_score")


def datenum(year: int, month: int = 6, day: int = 15) -> float:
    """MATLAB's serial date number: day 1 is 0000-01-01, so 1970-01-01 is 719529."""
    return float(dt.date(year, month, day).toordinal() + 366)


def imdb_record(
    full_path: str,
    born: int | None,
    taken: float,
    gender: float = 1.0,
    face_score: float = 3.5,
    second_face_score: float = NAN,
    image: bool = True,
) -> dict:
    return {
        "dob": datenum(born) if born is not None else 0.0,
        "photo_taken": taken,
        "full_path": full_path,
        "gender": gender,
        "face_score": face_score,
        "second_face_score": second_face_score,
        "image": image,
    }


def write_mat(mat_path: Path, records: list[dict], struct_name: str | None = None, fields=IMDB_FIELDS) -> Path:
    """The release's layout (the demo's writer), with a tiny photo beside it for each record that has one."""
    write_imdb_mat(mat_path, struct_name or mat_path.stem, {field: [r[field] for r in records] for field in fields})
    for r in records:
        if r["image"]:
            write_jpeg(mat_path.parent / r["full_path"])
    return mat_path


# Adience

ADIENCE_HEADER = "\t".join(adience.HEADER)


def adience_face(root: Path, user: str, face_id: int, age: str, gender: str = "f", image: bool = True) -> str:
    """A fold-file line for one face, with its image in the release's layout unless `image` is False."""
    original = f"{1000 + face_id}_abc_o.jpg"
    if image:
        write_jpeg(root / "faces" / user / f"coarse_tilt_aligned_face.{face_id}.{original}")
    return f"{user}\t{original}\t{face_id}\t{age}\t{gender}\t10\t20\t300\t300\t0\t0\t50"


def write_folds(root: Path, folds: dict[int, list[str]]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for fold in range(5):
        text = "\n".join([ADIENCE_HEADER, *folds.get(fold, [])]) + "\n"
        (root / f"fold_{fold}_data.txt").write_text(text, encoding="utf-8")


# APPA-REAL

APPA_HEADER = "file_name,num_ratings,apparent_age_avg,apparent_age_std,real_age"


def write_appa_split(root: Path, split: str, lines: list[str], images: list[str], header: str = APPA_HEADER) -> None:
    """`gt_avg_<split>.csv` and, for each image, the photo and the release's `_face.jpg` pre-crop beside it."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"gt_avg_{split}.csv").write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    for name in images:
        write_jpeg(root / split / name)
        write_jpeg(root / split / f"{name}_face.jpg")


# Labels tables (any dataset as a CSV)

LABELS_TABLE_HEADER = "path,age,person,gender"


def write_labels_table(
    path: Path, lines: list[str], header: str = LABELS_TABLE_HEADER, bom: bool = False, line_end: str = "\n"
) -> Path:
    """A labels table as spreadsheets and CSV writers leave it: UTF-8, with a byte-order mark or not, LF or CRLF."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\ufeff" if bom else "").encode() + (line_end.join([header, *lines]) + line_end).encode())
    return path


# FG-NET


def write_fgnet(root: Path, names: list[str]) -> list[Path]:
    """Photos under FG-NET's names (`001A02.JPG`, `001A43a.JPG` for a second photo at that age)."""
    return [write_jpeg(root / name) for name in names]


# Training shards


def write_records(path: Path, ages, seed: int, size: int = 48, dataset: str = "utkface", first_row: int = 0) -> Path:
    """A TFRecord file of drawn faces in the training shards' format."""
    import tensorflow as tf

    from agenet_pipeline.model.records import serialized_example

    rng = np.random.default_rng(seed)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for row, age in enumerate(ages, start=first_row):
            jpeg = cv2.imencode(".jpg", cv2.cvtColor(draw_face(float(age), rng, size), cv2.COLOR_RGB2BGR))[1].tobytes()
            writer.write(serialized_example(jpeg, int(SEED_BINS.index(age)), float(age), dataset, row))
    return path


# Label tables

LABEL_SCHEMA = {
    "dataset": pl.String,
    "row": pl.Int64,
    "status": pl.String,
    "split_group": pl.String,
    "crop_sha256": pl.String,
    "age": pl.Float64,
}


def labels(rows: list[tuple]) -> pl.DataFrame:
    """A label table from (dataset, split_group, crop_sha256[, status]) tuples; `row` counts within each dataset."""
    counts: dict[str, int] = {}
    records = []
    for dataset, group, crop, *status in rows:
        counts[dataset] = counts.get(dataset, -1) + 1
        records.append(
            {
                "dataset": dataset,
                "row": counts[dataset],
                "status": status[0] if status else "ok",
                "split_group": group,
                "crop_sha256": crop,
                "age": 30.0,
            }
        )
    return pl.DataFrame(records, schema=LABEL_SCHEMA)


label_rows = st.lists(
    st.tuples(
        st.sampled_from(["utkface", "imdb_wiki", "adience"]),
        st.sampled_from([None, "g0", "g1", "g2", "g3", "g4", "g5"]),
        st.sampled_from([None, "c0", "c1", "c2", "c3", "c4", "c5"]),
        st.sampled_from(["ok", "ok", "ok", "no_face"]),
    ),
    max_size=30,
)
