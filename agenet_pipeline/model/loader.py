"""The input path without TensorFlow: the same TFRecord shards as `model.input`, read by file offset, parsed by
hand, decoded with OpenCV and batched by a Keras `PyDataset` whose workers fetch batches in parallel.

Why a `PyDataset` over the TFRecord files, rather than another loader or the Parquet face shards: it is Keras'
own, so every backend's `fit` runs it with workers and nothing else to install (Grain or torch's DataLoader would
tie the path to one backend); and the shards are the very files `tf.data` reads, so both paths train on the same
examples (the cleaned IMDB subset included) and the run's lineage stays the same. A file is indexed once, by its
12-byte record headers, so that a batch is a few seeks: only the offsets are held in memory.

Order and augmentation are functions of (seed, epoch, batch): whichever worker decodes a batch, and in whichever
order the workers finish, `fit` sees the same batches, and a run resumed at epoch `e` sees the order an
uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import math
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import keras
import numpy as np

from agenet_pipeline.core.ages import SEED_BINS, AgeBins
from agenet_pipeline.faces.crop import decode_crop
from agenet_pipeline.model.augmentation import LUMA, MAX_ANGLE, ZOOM

INTERLEAVE_CYCLE = 8  # files read at once, as `model.input` reads them


class RecordError(ValueError):
    """A TFRecord file or one of its examples is not what the training shards hold; the message names it."""


def record_offsets(path: str) -> list[tuple[int, int]]:
    """(offset, length) of each record's data in the TFRecord file `path`: a record is a uint64 length, its
    masked CRC (4 bytes), the data and the data's CRC (4 bytes)."""
    offsets = []
    with open(path, "rb") as file:
        size = file.seek(0, 2)
        position = 0
        while position < size:
            file.seek(position)
            header = file.read(12)
            if len(header) < 12:
                raise RecordError(f"{path}: a truncated record header at byte {position}")
            (length,) = struct.unpack("<Q", header[:8])
            if position + 16 + length > size:
                raise RecordError(f"{path}: the record at byte {position} runs past the end of the file")
            offsets.append((position + 12, length))
            position += 16 + length
    return offsets


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int, bytes | int]]:
    """(field number, wire type, value) of a protobuf message: bytes for length-delimited fields, ints otherwise."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 2:
            length, position = _varint(data, position)
            yield number, wire, data[position : position + length]
            position += length
        elif wire == 0:
            value, position = _varint(data, position)
            yield number, wire, value
        elif wire == 5:
            yield number, wire, data[position : position + 4]
            position += 4
        elif wire == 1:
            yield number, wire, data[position : position + 8]
            position += 8
        else:
            raise RecordError(f"protobuf wire type {wire} is not one a tf.train.Example uses")


def _feature_value(feature: bytes) -> bytes | float | int:
    """The single value of a tf.train.Feature: bytes_list (1), float_list (2) or int64_list (3)."""
    for kind, _, values in _fields(feature):
        for _, wire, value in _fields(values):
            if kind == 1:
                return value
            if kind == 2:  # packed floats, or one unpacked
                return struct.unpack("<f", value[:4])[0]
            if kind == 3:
                number = _varint(value, 0)[0] if wire == 2 else value
                return number - (1 << 64) if number >= 1 << 63 else number
    raise RecordError("a feature holds no value")


def parse_example(record: bytes) -> dict[str, bytes | float | int]:
    """A serialised tf.train.Example (as `model.records.serialized_example` writes it) as a dict of its features."""
    example = {}
    for _, _, features in _fields(record):  # Example.features
        for _, _, entry in _fields(features):  # Features.feature: map entries of (key 1, value 2)
            parts = {number: value for number, _, value in _fields(entry)}
            example[parts[1].decode()] = _feature_value(parts[2])
    return example


def jpeg_side(jpeg: bytes) -> int:
    """The shorter side of a JPEG, read from its frame header (as `tf.io.extract_jpeg_shape`)."""
    position = 2
    while position + 9 < len(jpeg):
        if jpeg[position] != 0xFF:
            raise RecordError("a face crop is not a JPEG")
        marker = jpeg[position + 1]
        length = struct.unpack(">H", jpeg[position + 2 : position + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", jpeg[position + 5 : position + 9])
            return min(height, width)
        position += 2 + length
    raise RecordError("a face crop has no JPEG frame header")


def interleaved(sequences: Sequence[Sequence], cycle: int) -> list:
    """The items of `sequences` as `tf.data.Dataset.interleave` gives them (block length 1, deterministic): one
    from each of `cycle` open sequences in turn; an exhausted one is replaced, in its place in the cycle, by the
    next sequence when the turn comes back to it."""
    pending, slots, order = iter(sequences), [None] * min(cycle, len(sequences)), []
    exhausted, position = False, 0
    while not exhausted or any(slot is not None for slot in slots):
        if slots[position] is None and not exhausted:
            following = next(pending, None)
            if following is None:
                exhausted = True
            else:
                slots[position] = iter(following)
                continue
        if slots[position] is not None:
            item = next(slots[position], None)
            if item is None:
                slots[position] = None
            else:
                order.append(item)
        position = (position + 1) % len(slots)
    return order


@dataclass(frozen=True)
class Examples:
    """Every record of `files`, in file order, by (file, offset, length): what a loader reads from."""

    files: tuple[str, ...]
    locations: np.ndarray  # (n, 3) int64: file index, offset, length

    @classmethod
    def of(cls, files: Sequence[str]) -> Examples:
        """The records of `files` in the order `model.input` reads them unshuffled: interleaved one at a time."""
        if not files:
            raise ValueError("no TFRecord files to read")
        per_file = [
            [(index, offset, length) for offset, length in record_offsets(path)] for index, path in enumerate(files)
        ]
        rows = interleaved(per_file, INTERLEAVE_CYCLE)
        return cls(tuple(str(f) for f in files), np.array(rows, np.int64).reshape(-1, 3))

    def __len__(self) -> int:
        return len(self.locations)

    def read(self, indexes: np.ndarray, input_size: int) -> dict[str, np.ndarray]:
        """The examples at `indexes` (image uint8 at `input_size`, bin, age, dataset, row), in that order."""
        parsed = []
        with contextlib.ExitStack() as files:
            handles = {}
            for file_index, offset, length in self.locations[indexes]:
                path = self.files[file_index]
                if file_index not in handles:
                    handles[file_index] = files.enter_context(open(path, "rb"))
                handles[file_index].seek(offset)
                try:
                    parsed.append(parse_example(handles[file_index].read(length)))
                except (RecordError, KeyError, IndexError) as error:
                    raise RecordError(f"{path}: the record at byte {offset - 12} is not a training example") from error
        images = [decode_crop(e["image"], jpeg_side(e["image"]), input_size) for e in parsed]
        return {
            "image": np.stack(images) if images else np.zeros((0, input_size, input_size, 3), np.uint8),
            **{key: np.array([e[key] for e in parsed], dtype) for key, dtype in _KEYS.items()},
        }


_KEYS = {"bin": np.int64, "age": np.float32, "dataset": np.int64, "row": np.int64}


def soft_labels(ages: np.ndarray, bins: AgeBins, sigma: float) -> np.ndarray:
    """`model.input.soft_labels` in numpy: the mass of a normal around each age (a whole age: the middle of its
    year) in each bin."""
    ages = np.asarray(ages, np.float64)
    centre = np.where(ages == np.floor(ages), ages + 0.5, ages)
    edges = np.array(bins.cut_points[1:], np.float64)
    cdf = 0.5 * (1 + _erf((edges - centre[:, None]) / (sigma * math.sqrt(2))))
    cdf = np.concatenate([np.zeros_like(cdf[:, :1]), cdf, np.ones_like(cdf[:, :1])], axis=1)
    return (cdf[:, 1:] - cdf[:, :-1]).astype(np.float32)


_erf = np.vectorize(math.erf, otypes=[np.float64])


def one_hot(ages: np.ndarray, bins: AgeBins) -> np.ndarray:
    """Each age's bin, one-hot."""
    return np.eye(len(bins), dtype=np.float32)[bins.index(ages)]


def augmented(images: np.ndarray, rng: np.random.Generator, greyscale: float = 0.0) -> np.ndarray:
    """`model.input.augmented` with OpenCV: per image, a flip with p 0.5, a rotation of up to 0.05 turn and a zoom
    of up to 10 %, as one affine map about the centre, sampled at the nearest pixel, black outside; then, with
    probability `greyscale`, the image in grey (`in_grey`)."""
    n, height, width = images.shape[:3]
    flip = np.where(rng.uniform(size=n) < 0.5, -1.0, 1.0)
    angle = rng.uniform(-MAX_ANGLE, MAX_ANGLE, n)
    scale = rng.uniform(*ZOOM, n)
    grey = rng.uniform(size=n) < greyscale
    cy, cx = (height - 1) / 2, (width - 1) / 2
    out = np.empty_like(images)
    for i in range(n):
        # Output pixel p samples the input at M (p - c) + c, with M = scale * rotation * diag(flip, 1).
        cos, sin = math.cos(angle[i]) * scale[i], math.sin(angle[i]) * scale[i]
        a0, a1, b0, b1 = cos * flip[i], -sin, sin * flip[i], cos
        matrix = np.array([[a0, a1, cx - a0 * cx - a1 * cy], [b0, b1, cy - b0 * cx - b1 * cy]])
        out[i] = cv2.warpAffine(
            images[i],
            matrix,
            (width, height),
            flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
    out[grey] = in_grey(out[grey])
    return out


def in_grey(images: np.ndarray) -> np.ndarray:
    """`model.input.in_grey`: uint8 RGB images with each pixel's luma in all three channels."""
    luma = np.rint(images.astype(np.float32) @ np.array(LUMA, np.float32))
    return np.repeat(np.clip(luma, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


class TrainingBatches(keras.utils.PyDataset):
    """(images float32, labels) batches for `fit`, as `model.input.batches` gives them, on any backend.

    `shuffle`: a seeded order of all examples that changes each epoch; `augment`: the paper's augmentation, one
    seeded draw per batch and epoch. `epoch` is the epoch the first pass is (a resumed run's), so that the order
    does not depend on where a run was interrupted.
    """

    def __init__(
        self,
        files: Sequence[str],
        input_size: int,
        batch_size: int,
        *,
        shuffle: bool = False,
        augment: bool = False,
        greyscale: float = 0.0,
        seed: int = 0,
        bins: AgeBins = SEED_BINS,
        label_sigma: float | None = None,
        epoch: int = 0,
        workers: int = 2,
    ):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max(4, 2 * workers))
        self.examples = Examples.of(files)
        self.input_size, self.batch_size = input_size, batch_size
        self.shuffle, self.augment, self.greyscale, self.seed = shuffle, augment, greyscale, seed
        self.bins, self.label_sigma = bins, label_sigma
        self.epoch = epoch
        self.order = self._epoch_order()

    def _epoch_order(self) -> np.ndarray:
        count = len(self.examples)
        return np.random.default_rng([self.seed, self.epoch]).permutation(count) if self.shuffle else np.arange(count)

    def __len__(self) -> int:
        return math.ceil(len(self.examples) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        indexes = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        batch = self.examples.read(indexes, self.input_size)
        images = batch["image"]
        if self.augment:
            images = augmented(images, np.random.default_rng([self.seed, self.epoch, index]), self.greyscale)
        labels = (
            soft_labels(batch["age"], self.bins, self.label_sigma)
            if self.label_sigma
            else one_hot(batch["age"], self.bins)
        )
        return images.astype(np.float32), labels

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self._epoch_order()


def example_batches(files: Sequence[str], input_size: int, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Batches of dicts (image float32, bin, age, dataset, row) in file order, for prediction and evaluation
    (`model.input.examples` without TensorFlow)."""
    examples = Examples.of(files)
    for start in range(0, len(examples), batch_size):
        batch = examples.read(np.arange(start, min(start + batch_size, len(examples))), input_size)
        yield batch | {"image": batch["image"].astype(np.float32)}
