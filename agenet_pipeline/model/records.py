"""The TFRecord schema of training shards: files of (JPEG crop, age bin, age, dataset id, row), small enough
to stream.

Each split of each dataset has its own files (`train-utkface-00000-of-00002.tfrecord`), so a training set is
a choice of files; rows are spread over a dataset's files by a hash, and a `tf.data` interleave over the files
of several datasets reads a well-mixed stream.
"""

from __future__ import annotations

import hashlib
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from agenet_pipeline.core.datasets import DATASETS
from agenet_pipeline.core.files import atomic_path
from agenet_pipeline.faces.storage import naming_damaged_shards, shard_paths, verify_shard

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


def serialized_example(jpeg: bytes, bin_index: int, age: float, dataset: str, row: int) -> bytes:
    import tensorflow as tf

    feature = tf.train.Feature
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "image": feature(bytes_list=tf.train.BytesList(value=[jpeg])),
                "bin": feature(int64_list=tf.train.Int64List(value=[bin_index])),
                "age": feature(float_list=tf.train.FloatList(value=[age])),
                "dataset": feature(int64_list=tf.train.Int64List(value=[DATASETS[dataset].id])),
                "row": feature(int64_list=tf.train.Int64List(value=[row])),
            }
        )
    ).SerializeToString()


@dataclass(frozen=True)
class ShardFile:
    path: Path
    examples: int


def _scrambled(row: int) -> int:
    """A fixed pseudo-random key of a row: the order in which rows are written."""
    return int.from_bytes(hashlib.blake2b(str(row).encode(), digest_size=8).digest(), "big")


@contextmanager
def _writer(path: Path):
    import tensorflow as tf

    with atomic_path(path) as tmp, tf.io.TFRecordWriter(str(tmp)) as writer:
        yield writer


def shard_name(split: str, dataset: str) -> str:
    """The name of one split of one dataset's shards, such as `train-utkface`."""
    return f"{split}-{dataset}"


def shard_files(folder: Path, name: str) -> list[Path]:
    """The TFRecord files written under `name` (for example `train-utkface`)."""
    return sorted(folder.glob(f"{name}-[0-9]*-of-[0-9]*.tfrecord"))


def remove_shards(folder: Path, name: str) -> None:
    """Delete the files written under `name`: a split of a dataset that is no longer there."""
    for path in shard_files(folder, name):
        path.unlink()


def write_shards(
    rows: pl.DataFrame, dataset: str, faces_folder: Path, folder: Path, name: str, file_bytes: int = DEFAULT_FILE_BYTES
) -> list[ShardFile]:
    """Write the crops of one dataset's `rows` (row, bin, age, crop_bytes) as `folder/<name>-NNNNN-of-NNNNN.tfrecord`.

    Rows go to the files, and into each file, in a scrambled order: face tables follow the source's order (UTKFace
    names start with the age), which a shuffle buffer alone would not undo. One file's crops, at most
    `file_bytes`, are held in memory while it is written. A face shard whose bytes are not those written raises
    CorruptShardError, naming it, before any file is written.
    """
    files = max(1, math.ceil(rows["crop_bytes"].sum() / file_bytes)) if rows.height else 1
    paths = [folder / f"{name}-{i:05d}-of-{files:05d}.tfrecord" for i in range(files)]
    for stale in set(shard_files(folder, name)) - set(paths):
        stale.unlink()
    for shard in shard_paths(faces_folder):
        verify_shard(shard)
    keys = [_scrambled(row) for row in rows["row"]]
    order = rows.select("row", "bin", "age").with_columns(pl.Series("key", keys, dtype=pl.UInt64))
    written = []
    for index, path in enumerate(paths):
        wanted = order.filter(pl.col("key") % files == index)
        with naming_damaged_shards(faces_folder):
            crops = [
                pl.read_parquet(shard, columns=["row", "crop_jpeg"]).join(wanted, on="row")
                for shard in shard_paths(faces_folder)
            ]
        examples = pl.concat(crops).sort("key") if crops else wanted.clear()
        if examples.height != wanted.height:
            raise RuntimeError(f"{faces_folder} lacks {wanted.height - examples.height} of the crops for {path.name}")
        with _writer(path) as writer:
            for row, jpeg, bin_index, age in examples.select("row", "crop_jpeg", "bin", "age").iter_rows():
                writer.write(serialized_example(jpeg, bin_index, age, dataset, row))
        written.append(ShardFile(path, examples.height))
    return written
