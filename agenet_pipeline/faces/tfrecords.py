"""Training shards: TFRecord files of (JPEG crop, age bin, age, dataset id, row), each small enough to stream.

Each split of each dataset has its own files (`train-utkface-00000-of-00002.tfrecord`), so a training set is
a choice of files; rows are spread over a dataset's files by a hash, and a `tf.data` interleave over the files
of several datasets reads a well-mixed stream.
"""

from __future__ import annotations

import hashlib
import math
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from agenet_pipeline.faces.storage import atomic_path, shard_paths

DATASET_IDS = {"utkface": 0, "appa_real": 1, "imdb_wiki": 2, "adience": 3}
DEFAULT_FILE_BYTES = 200 * 2**20


def feature_spec():
    import tensorflow as tf

    return {
        "image": tf.io.FixedLenFeature([], tf.string),
        "bin": tf.io.FixedLenFeature([], tf.int64),
        "age": tf.io.FixedLenFeature([], tf.float32),
        "dataset": tf.io.FixedLenFeature([], tf.int64),
        "row": tf.io.FixedLenFeature([], tf.int64),
    }


def _example(jpeg: bytes, bin_index: int, age: float, dataset: str, row: int) -> bytes:
    import tensorflow as tf

    feature = tf.train.Feature
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "image": feature(bytes_list=tf.train.BytesList(value=[jpeg])),
                "bin": feature(int64_list=tf.train.Int64List(value=[bin_index])),
                "age": feature(float_list=tf.train.FloatList(value=[age])),
                "dataset": feature(int64_list=tf.train.Int64List(value=[DATASET_IDS[dataset]])),
                "row": feature(int64_list=tf.train.Int64List(value=[row])),
            }
        )
    ).SerializeToString()


@dataclass(frozen=True)
class ShardFile:
    path: Path
    examples: int


def _file_of(row: int, files: int) -> int:
    return int.from_bytes(hashlib.blake2b(str(row).encode(), digest_size=8).digest(), "big") % files


@contextmanager
def _writer(path: Path):
    import tensorflow as tf

    with atomic_path(path) as tmp, tf.io.TFRecordWriter(str(tmp)) as writer:
        yield writer


def shard_files(folder: Path, name: str) -> list[Path]:
    """The TFRecord files written under `name` (for example `train-utkface`)."""
    return sorted(folder.glob(f"{name}-[0-9]*-of-[0-9]*.tfrecord"))


def write_shards(
    rows: pl.DataFrame, dataset: str, faces_folder: Path, folder: Path, name: str, file_bytes: int = DEFAULT_FILE_BYTES
) -> list[ShardFile]:
    """Write the crops of one dataset's `rows` (row, bin, age, crop_bytes) as `folder/<name>-NNNNN-of-NNNNN.tfrecord`.

    The crops are read from the dataset's face shards one shard file at a time.
    """
    files = max(1, math.ceil(rows["crop_bytes"].sum() / file_bytes)) if rows.height else 1
    paths = [folder / f"{name}-{i:05d}-of-{files:05d}.tfrecord" for i in range(files)]
    for stale in set(shard_files(folder, name)) - set(paths):
        stale.unlink()
    counts = [0] * files
    wanted = rows.select("row", "bin", "age")
    with ExitStack() as stack:
        writers = [stack.enter_context(_writer(path)) for path in paths]
        for shard in shard_paths(faces_folder):
            joined = pl.read_parquet(shard, columns=["row", "crop_jpeg"]).join(wanted, on="row")
            for row, jpeg, bin_index, age in joined.iter_rows():
                target = _file_of(row, files)
                writers[target].write(_example(jpeg, bin_index, age, dataset, row))
                counts[target] += 1
    return [ShardFile(path, n) for path, n in zip(paths, counts)]
