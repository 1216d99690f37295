"""Training shards: TFRecord files of (JPEG crop, age bin, age, dataset id), each small enough to stream.

Rows are spread over a split's files by a hash of their key, so every file mixes datasets and ages and a
`tf.data` interleave over the files reads a well-shuffled stream.
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
    }


def _example(jpeg: bytes, bin_index: int, age: float, dataset: str) -> bytes:
    import tensorflow as tf

    feature = tf.train.Feature
    return tf.train.Example(features=tf.train.Features(feature={
        "image": feature(bytes_list=tf.train.BytesList(value=[jpeg])),
        "bin": feature(int64_list=tf.train.Int64List(value=[bin_index])),
        "age": feature(float_list=tf.train.FloatList(value=[age])),
        "dataset": feature(int64_list=tf.train.Int64List(value=[DATASET_IDS[dataset]])),
    })).SerializeToString()


@dataclass(frozen=True)
class ShardFile:
    split: str
    path: Path
    examples: int


def _file_of(dataset: str, row: int, files: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{dataset}:{row}".encode(), digest_size=8).digest(), "big") % files


@contextmanager
def _writer(path: Path):
    import tensorflow as tf

    with atomic_path(path) as tmp, tf.io.TFRecordWriter(str(tmp)) as writer:
        yield writer


def write_split_shards(rows: pl.DataFrame, face_folders: dict[str, Path], folder: Path, split: str,
                       file_bytes: int = DEFAULT_FILE_BYTES) -> list[ShardFile]:
    """Write the crops of `rows` (dataset, row, bin, age, crop_bytes) as `folder/<split>-NNNNN-of-NNNNN.tfrecord`.

    The crops are read from each dataset's face shards one shard file at a time.
    """
    files = max(1, math.ceil(rows["crop_bytes"].sum() / file_bytes)) if rows.height else 1
    paths = [folder / f"{split}-{i:05d}-of-{files:05d}.tfrecord" for i in range(files)]
    for stale in folder.glob(f"{split}-*.tfrecord"):
        if stale not in paths:
            stale.unlink()
    counts = [0] * files
    with ExitStack() as stack:
        writers = [stack.enter_context(_writer(path)) for path in paths]
        for dataset, wanted in rows.select("dataset", "row", "bin", "age").partition_by("dataset", as_dict=True).items():
            dataset = dataset[0]
            for shard in shard_paths(face_folders[dataset]):
                joined = pl.read_parquet(shard, columns=["row", "crop_jpeg"]).join(wanted, on="row")
                for row, jpeg, bin_index, age in joined.select("row", "crop_jpeg", "bin", "age").iter_rows():
                    target = _file_of(dataset, row, files)
                    writers[target].write(_example(jpeg, bin_index, age, dataset))
                    counts[target] += 1
    return [ShardFile(split, path, n) for path, n in zip(paths, counts)]
