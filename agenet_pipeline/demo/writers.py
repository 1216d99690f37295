"""The synthetic demo: small datasets in the four real on-disk layouts, filled with drawn faces.

Every image is procedurally drawn (see `synthetic_faces`); nothing here is a real person. Each layout carries a
few deliberate problems (a malformed name, an unreadable file, a photo with no face, a group photo, missing
files, impossible labels) so that a demo run shows every kind of rejection next to the usable rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import scipy.io

from agenet_pipeline.core.ages import SEED_BINS
from agenet_pipeline.demo.synthetic_faces import draw_face

DEMO_SIZES = {"utkface": 1200, "appa_real": 600, "imdb_wiki": 1200, "adience": 300}
_OLDEST = 95


def _ages(rng: np.random.Generator, count: int) -> np.ndarray:
    """Whole-year ages with every seed bin equally likely."""
    edges = [*SEED_BINS.cut_points, _OLDEST + 1]
    bins = rng.integers(0, len(SEED_BINS), count)
    return np.array([rng.integers(edges[b], edges[b + 1]) for b in bins], dtype=np.int64)


def _save_jpeg(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92]):
        raise OSError(f"could not write {path}")


def _empty_scene(rng: np.random.Generator, size: int) -> np.ndarray:
    """A photo with no face in it: a smooth colour gradient with noise."""
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    ramp = np.linspace(0, 1, size)[:, None, None]
    scene = a * (1 - ramp) + b * ramp + rng.normal(0, 12, (size, size, 3))
    return np.clip(scene, 0, 255).astype(np.uint8)


def group_photo(rng: np.random.Generator, faces: int = 5, size: int = 192) -> np.ndarray:
    """Several people in one photo, in two rows of three places."""
    tiles = [draw_face(float(rng.integers(5, 80)), rng, size) for _ in range(faces)]
    tiles += [_empty_scene(rng, size) for _ in range(-faces % 3)]
    return np.concatenate([np.concatenate(tiles[i : i + 3], axis=1) for i in range(0, len(tiles), 3)], axis=0)


def write_utkface(root: Path, rng: np.random.Generator, count: int) -> None:
    folder = root / "UTKFace"
    start = dt.datetime(2017, 1, 1)
    for i, age in enumerate(_ages(rng, count)):
        taken = (start + dt.timedelta(seconds=int(i) * 97)).strftime("%Y%m%d%H%M%S") + f"{i % 1000:03d}"
        name = f"{age}_{rng.integers(0, 2)}_{rng.integers(0, 5)}_{taken}.jpg.chip.jpg"
        _save_jpeg(folder / name, draw_face(float(age), rng, 200))
    _save_jpeg(folder / "25_0_.jpg.chip.jpg", draw_face(25.0, rng, 200))  # malformed name
    _save_jpeg(folder / "250_1_0_20170101000000000.jpg.chip.jpg", draw_face(70.0, rng, 200))  # impossible age
    (folder / "30_1_2_20170101000000001.jpg.chip.jpg").write_bytes(b"not a JPEG")  # unreadable
    _save_jpeg(folder / "40_0_1_20170101000000002.jpg.chip.jpg", _empty_scene(rng, 200))  # no face


def write_appa_real(root: Path, rng: np.random.Generator, count: int) -> None:
    header = ["file_name", "num_ratings", "apparent_age_avg", "apparent_age_std", "real_age"]
    splits = {"train": count * 6 // 10, "valid": count * 2 // 10}
    splits["test"] = count - sum(splits.values())
    index = 0
    for split, size in splits.items():
        records = []
        for age in _ages(rng, size):
            name = f"{index:06d}.jpg"
            photo = draw_face(float(age), rng, 320)
            _save_jpeg(root / split / name, photo)
            _save_jpeg(root / split / f"{name}_face.jpg", photo[60:260, 60:260])  # the release's pre-crop
            apparent = float(np.clip(age + rng.normal(0, 3), 1, 100))
            records.append([name, int(rng.integers(20, 60)), f"{apparent:.4f}", f"{rng.uniform(2, 6):.4f}", int(age)])
            index += 1
        if split == "train":
            _save_jpeg(root / split / f"{index:06d}.jpg", group_photo(rng))
            records.append([f"{index:06d}.jpg", 30, "33.0", "4.0", 31])
            records.append([f"{index + 1:06d}.jpg", 30, "20.0", "3.0", -3])  # impossible age
            records.append([f"{index + 2:06d}.jpg", 30, "20.0", "3.0", 22])  # listed, file missing
            index += 3
        with open(root / f"gt_avg_{split}.csv", "w", newline="") as f:
            csv.writer(f).writerows([header, *records])


def _matlab_datenum(day: dt.date) -> float:
    return float(day.toordinal() + 366)


def write_imdb_wiki(root: Path, rng: np.random.Generator, count: int) -> None:
    folder = root / "imdb_crop"
    people = max(count // 4, 1)
    fields = {k: [] for k in ("dob", "photo_taken", "full_path", "gender", "name", "face_score", "second_face_score")}
    for i, age in enumerate(_ages(rng, count)):
        person = 1000 + int(rng.integers(0, people))
        taken = int(rng.integers(1990, 2016))
        born = dt.date(taken - int(age), int(rng.integers(1, 13)), int(rng.integers(1, 29)))
        relative = f"{person % 100:02d}/nm{person:07d}_rm{i:09d}_{born.year}-{born.month}-{born.day}_{taken}.jpg"
        face_score, second = float(rng.uniform(1.5, 5)), float("nan")
        kind = i % 25
        if kind == 0:
            face_score = float("-inf")  # the release's "no face found"
            _save_jpeg(folder / relative, _empty_scene(rng, 256))
        elif kind == 1:
            second = float(rng.uniform(1, 3))  # a second face: the label may belong to either
            _save_jpeg(folder / relative, group_photo(rng, faces=2))
        elif kind == 2:
            born = dt.date(taken + 3, 1, 1)  # born after the photo was taken
            _save_jpeg(folder / relative, draw_face(float(age), rng, 256))
        else:
            _save_jpeg(folder / relative, draw_face(float(age), rng, 256))
        fields["dob"].append(_matlab_datenum(born))
        fields["photo_taken"].append(taken)
        fields["full_path"].append(relative)
        fields["gender"].append(float(rng.integers(0, 2)))
        fields["name"].append(f"Person {person}")
        fields["face_score"].append(face_score)
        fields["second_face_score"].append(second)
    write_imdb_mat(folder / "imdb.mat", "imdb", fields)


def write_imdb_mat(path: Path, struct_name: str, fields: dict[str, list]) -> Path:
    """The IMDB-WIKI release's layout: a 1x1 struct of 1xN arrays; `full_path` and `name` are cells of strings,
    the other fields numbers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    struct = {}
    for key, values in fields.items():
        if key in ("full_path", "name"):
            cell = np.empty((1, len(values)), dtype=object)
            cell[0, :] = [np.array([value]) for value in values]
            struct[key] = cell
        else:
            struct[key] = np.array([values], dtype=np.float64)
    scipy.io.savemat(path, {struct_name: struct})
    return path


_ADIENCE_RANGES = ((0, 2), (4, 6), (8, 12), (15, 20), (25, 32), (38, 43), (48, 53), (60, 100))
_ADIENCE_HEADER = (
    "user_id\toriginal_image\tface_id\tage\tgender\tx\ty\tdx\tdy\ttilt_ang\tfiducial_yaw_angle\tfiducial_score"
)


def _adience_age_field(age: int) -> str:
    """The release's range when the age falls in one, else the single number (as some release rows have)."""
    for low, high in _ADIENCE_RANGES:
        if low <= age <= high:
            return f"({low}, {high})"
    return str(age)


def write_adience(root: Path, rng: np.random.Generator, count: int) -> None:
    users = [f"{10000000 + int(rng.integers(0, 10**7))}@N0{k % 8}" for k in range(max(count // 8, 5))]
    folds = {fold: [_ADIENCE_HEADER] for fold in range(5)}
    for i, age in enumerate(_ages(rng, count)):
        user_index = int(rng.integers(0, len(users)))
        user, fold = users[user_index], user_index % 5  # subject-exclusive folds
        original, face_id = f"{rng.integers(10**9, 10**10)}_{i:04x}abcd_o.jpg", i + 1
        field = "None" if i % 40 == 0 else _adience_age_field(int(age))
        gender = "mf"[int(rng.integers(0, 2))]
        folds[fold].append(f"{user}\t{original}\t{face_id}\t{field}\t{gender}\t10\t20\t300\t300\t0\t0\t50")
        if i % 50 != 7:  # a few listed faces have no file, as in partial copies of the release
            path = root / "faces" / user / f"coarse_tilt_aligned_face.{face_id}.{original}"
            _save_jpeg(path, draw_face(float(age), rng, 240))
    for fold, lines in folds.items():
        (root / f"fold_{fold}_data.txt").write_text("\n".join(lines) + "\n")


WRITERS: dict[str, Callable[[Path, np.random.Generator, int], None]] = {
    "utkface": write_utkface,
    "appa_real": write_appa_real,
    "imdb_wiki": write_imdb_wiki,
    "adience": write_adience,
}


def demo_dataset(folder: Path, dataset: str, count: int | None = None, seed: int = 0) -> Path:
    """The demo copy of `dataset` under `folder`, written once (atomically) and reused afterwards."""
    count = count or DEMO_SIZES[dataset]
    target = folder / f"{dataset}-{count}"
    if target.is_dir():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dataset}.", dir=folder))
    try:
        WRITERS[dataset](staging, np.random.default_rng([seed, zlib.crc32(dataset.encode())]), count)
        staging.rename(target)
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
