"""Training throughput of the `seed` network: fed by the TFRecord input pipeline vs. fed from memory.

    .venv/bin/python benchmarks/training.py                      # real UTKFace chips, 128x128, 3 runs
    .venv/bin/python benchmarks/training.py --runs 5 --steps 30  # steadier medians
    .venv/bin/python benchmarks/training.py --variants           # also the pipeline variants (diagnosis)
    .venv/bin/python benchmarks/training.py --variants keras-augmentation  # only that variant

Data: the UTKFace chips at ../shared/data/utkface_part1, through the project's own stages (manifest, face stage
with the real-data settings: 256 px crops, `fallback_whole_image`, then splits and `write_shards`). When that
folder is absent the synthetic demo UTKFace set is used instead (a note says so). The face crops and shards are
cached under `--work` (default /tmp/agenet-bench), so only the first run pays for the face stage.

What each number measures (all at `--input-size`, batch `--batch-size`, the `seed` recipe's network and training):
- pipeline + model: `model.fit` on `input.batches(train files, shuffle=True, augment=True)` (interleave, parallel
  decode and resize, shuffle, augmentation in the graph, prefetch), exactly what `training.train` feeds it.
- in-memory + model: the same compiled model, `model.fit` on the same photos decoded and resized once beforehand
  (by the same `tf.image` calls, via `input.examples`) into float32 tensors, pre-batched, `from_tensor_slices`,
  `.repeat().prefetch()`: no decoding, no augmentation: the floor the pipeline can reach.
  Both use the same Adam optimiser, loss and metrics as `training.train`, and the same labels (one-hot bins).
- Each run is one `fit` call of `--warmup` + `--steps` batches; a callback times the last `--steps` batches (so
  graph tracing and the pipeline's start-up are left out). The modes run one after the other within each run
  (in reverse order every other run), each ratio to in-memory is taken within a run; medians over `--runs`.
- pipeline alone: `input.batches(..., shuffle=True, augment=True)` iterated with no model, `--pipeline-batches`
  batches after `--warmup` (reading each batch to numpy is left out: the iteration pulls tensors only), median over
  runs.
- loader + model: `model.fit` on `loader.TrainingBatches(train files, shuffle=True, augment=True)`, the
  backend-neutral input (a Keras PyDataset, `--loader-workers` threads), here on the TensorFlow backend.
- loader alone: the same PyDataset's batches fetched by a pool of `--loader-workers` threads in batch order, as
  Keras' `fit` fetches them, no model; `--pipeline-batches` batches after `--warmup`, median over runs.
- CPU ms/image: this process's CPU seconds (all its threads: the model's and tf.data's) per timed image. The
  "ratio (CPU)" is in-memory CPU ms/image / this mode's: the rate ratio to expect when the model already keeps
  every core busy (as here: the seed network saturates 2 cores), since the input's CPU then comes out of the
  model's. It is much less sensitive to other jobs on a shared machine than the wall-clock ratio.

Targets (from the issue): pipeline + model >= 95 % of in-memory + model; and the pipeline alone far faster than
the model trains on this CPU: pipeline-alone images/s over in-memory training images/s, taken as met at >= 10x
(and the same per CPU second). Issue 17: the loader alone >= 10x the in-memory training rate, in the same run.

`--variants [NAME ...]` also times, in the same runs, pipelines built here from the package's parts but changed
one way each (experiments, not the package's code), with the model and alone:
- no-augmentation: the package's decode and resize, no augmentation (what augmentation costs);
- keras-augmentation: the package's decode, then flip, rotation and zoom as three Keras preprocessing layers
  (`RandomFlip`, `RandomRotation`, `RandomZoom`), each resampling the batch: what `input.augment` replaced.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import sys
import time
from pathlib import Path

DEFAULT_UTKFACE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "utkface_part1"
DEFAULT_WORK = Path("/tmp/agenet-bench")


# ---------------------------------------------------------------------------------------------------------------
# Data: UTKFace (or the demo set) through the project's stages to TFRecord shards, cached under --work.
# ---------------------------------------------------------------------------------------------------------------


def prepare_shards(
    work: Path,
    utkface: Path | None,
    crop_size: int = 256,
    demo_count: int = 1200,
    workers: int = 2,
    shuffle_rows: bool = False,
    log=print,
) -> dict:
    """{"source", "files": {split: [paths]}, "ages": {split: [ages]}} for utkface (or the demo when None/absent).

    Built once per source and crop size under `work`; later calls read the cached shards (a `done.json` marker
    is written last, so an interrupted build is redone; the face stage itself resumes by its fingerprints).
    `shuffle_rows`: shuffle the manifest (seed 0) before numbering its rows, so that the shards hold the records in
    a random order rather than in file-name order; the split of every photo is the same (it hangs on its content).
    """
    import polars as pl

    from agenet_pipeline.datasets.labels import binned_labels
    from agenet_pipeline.datasets.manifest import number_rows
    from agenet_pipeline.datasets.splits import SPLITS, assign_splits
    from agenet_pipeline.datasets.utkface import read_utkface
    from agenet_pipeline.faces.detector import resolve_model
    from agenet_pipeline.faces.settings import FaceSettings
    from agenet_pipeline.faces.sharded import run_face_stage
    from agenet_pipeline.faces.storage import scan_faces
    from agenet_pipeline.model.records import shard_files, write_shards

    if utkface is not None and utkface.is_dir():
        source, root = "utkface_part1", utkface
    else:
        from agenet_pipeline.demo.writers import demo_dataset

        source = f"demo-utkface-{demo_count}"
        root = demo_dataset(work / "demo", "utkface", demo_count)
    base = work / f"{source}-crop{crop_size}{'-shuffled' if shuffle_rows else ''}"
    marker = base / "done.json"
    shards = base / "shards"
    if marker.is_file():
        done = json.loads(marker.read_text())
        files = {s: [str(p) for p in shard_files(shards, f"{s}-utkface")] for s in SPLITS}
        if all(files[s] for s in SPLITS):
            return {"source": source, "files": files, "ages": done["ages"], "root": str(root)}
    log(f"building shards of {root} under {base} (once; later runs reuse them) ...")
    started = time.perf_counter()
    manifest = read_utkface(root)
    if shuffle_rows:
        manifest = manifest.sample(fraction=1.0, shuffle=True, seed=0)
    manifest = number_rows(manifest)
    faces_folder = base / "faces"
    faces_folder.mkdir(parents=True, exist_ok=True)
    settings = FaceSettings(crop_size=crop_size, fallback_whole_image=True)  # as configs/real_datasets.yaml
    run_face_stage(manifest, faces_folder, resolve_model(), settings, shard_size=2000, workers=workers)
    faces = scan_faces(faces_folder).drop("crop_jpeg", "box").collect()
    splits = assign_splits(binned_labels([faces]), evaluation_datasets=())
    shards.mkdir(parents=True, exist_ok=True)
    ages = {}
    for split in SPLITS:
        rows = splits.filter(pl.col("split") == split)
        write_shards(rows, "utkface", faces_folder, shards, f"{split}-utkface")
        ages[split] = rows["age"].to_list()
    marker.write_text(json.dumps({"ages": ages}))
    log(f"  built in {time.perf_counter() - started:.0f} s: " + ", ".join(f"{s} {len(a)}" for s, a in ages.items()))
    files = {s: [str(p) for p in shard_files(shards, f"{s}-utkface")] for s in SPLITS}
    return {"source": source, "files": files, "ages": ages, "root": str(root)}


# ---------------------------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------------------------


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs of every mode (medians are reported)")
    parser.add_argument("--steps", type=int, default=30, help="timed training batches per run")
    parser.add_argument("--warmup", type=int, default=4, help="untimed batches before them (tracing, start-up)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument(
        "--width",
        type=float,
        default=1.0,
        help="scale the seed network's filters (1.0: the paper's 64..1024; for quick checks only)",
    )
    parser.add_argument("--pipeline-batches", type=int, default=60, help="timed batches of the pipeline alone")
    parser.add_argument("--loader-workers", type=int, default=4, help="threads of the backend-neutral loader")
    parser.add_argument(
        "--variants",
        nargs="*",
        default=None,
        choices=list(VARIANTS),
        metavar="VARIANT",
        help=f"also time pipeline variants (see the docstring): all when none are named, or some of "
        f"{', '.join(VARIANTS)}",
    )
    parser.add_argument(
        "--utkface", type=Path, default=DEFAULT_UTKFACE, help="real UTKFace root (default: %(default)s)"
    )
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="cache of face crops and shards")
    parser.add_argument("--crop-size", type=int, default=256, help="face crop side in the shards (the asset's default)")
    parser.add_argument("--demo-count", type=int, default=1200, help="demo images when the real data is absent")
    return parser.parse_args(argv)


class _BatchTimer:
    """A Keras callback factory: wall and CPU time from the end of batch `warmup - 1` to the end of the last one."""

    def __new__(cls, warmup: int):
        import keras

        class Timer(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.start = self.start_cpu = None
                if warmup == 0:
                    self.start, self.start_cpu = time.perf_counter(), cpu_seconds()

            def on_train_batch_end(self, batch, logs=None):
                if batch == warmup - 1:
                    self.start, self.start_cpu = time.perf_counter(), cpu_seconds()
                self.end, self.end_cpu = time.perf_counter(), cpu_seconds()

        return Timer()


def build_seed(input_size: int, width: float):
    import dataclasses

    import keras

    from agenet_pipeline.model.recipes import RECIPES
    from agenet_pipeline.model.training import compiled_model

    recipe = RECIPES["seed"]
    network = dataclasses.replace(
        recipe.network, input_size=input_size, filters=tuple(max(1, round(f * width)) for f in recipe.network.filters)
    )
    keras.utils.set_random_seed(recipe.training.seed)
    return compiled_model(network, recipe.training), network, recipe.training


def in_memory_dataset(files: list[str], input_size: int, batch_size: int, batches_needed: int, bins: int):
    """The first photos of `files` decoded and resized once (the pipeline's own decode), pre-batched, repeated."""
    import numpy as np
    import tensorflow as tf

    from agenet_pipeline.model.input import examples

    images, labels = [], []
    for batch in examples(files, input_size, batch_size).take(batches_needed):
        if batch["image"].shape[0] < batch_size:
            break
        images.append(batch["image"].numpy())
        labels.append(tf.one_hot(batch["bin"], bins).numpy())
    images, labels = np.stack(images), np.stack(labels)
    data = tf.data.Dataset.from_tensor_slices((images, labels)).repeat().prefetch(tf.data.AUTOTUNE)
    return data, images.shape[0] * batch_size


def keras_augmentation(seed: int):
    """Flip, rotation (+-0.05 turn) and zoom (+-10 %) as three Keras layers, as the package first had it."""
    import keras

    layers = keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.05, fill_mode="constant", seed=seed + 1),
            keras.layers.RandomZoom((-0.1, 0.1), fill_mode="constant", seed=seed + 2),
        ]
    )
    return lambda images: layers(images, training=True)


VARIANTS = {
    "no-augmentation": "variant: package decode, no augmentation",
    "keras-augmentation": "variant: package decode, augmentation as three Keras layers",
}


def pipeline_dataset(
    files: list[str], input_size: int, batch_size: int, training, variant: str = "package", crop_size: int = 256
):
    """The package's training pipeline, or a variant of it (experiments; see the docstring)."""
    import tensorflow as tf

    from agenet_pipeline.model import input as inp

    if variant == "package":
        return inp.batches(
            files,
            input_size,
            batch_size,
            shuffle=True,
            augment=True,
            seed=training.seed,
            label_sigma=training.label_sigma,
        ).repeat()
    bins = len(inp.SEED_BINS)
    records = inp._records(files, input_size, training.seed, 2048).batch(batch_size)
    if variant == "no-augmentation":
        augment = None
    elif variant == "keras-augmentation":
        augment = keras_augmentation(training.seed)
    else:
        raise ValueError(variant)

    def pair(example):
        image = augment(example["image"]) if augment else example["image"]
        return image, tf.one_hot(example["bin"], bins)

    return records.map(pair, num_parallel_calls=inp.AUTOTUNE).prefetch(inp.AUTOTUNE).repeat()


def loader_batches(files: list[str], input_size: int, batch_size: int, training, workers: int):
    """The backend-neutral loader as `training.train` makes it for a backend other than TensorFlow."""
    from agenet_pipeline.model.loader import TrainingBatches

    return TrainingBatches(
        files,
        input_size,
        batch_size,
        shuffle=True,
        augment=True,
        seed=training.seed,
        label_sigma=training.label_sigma,
        workers=workers,
    )


class ThreadedBatches:
    """Batches of a PyDataset in order, fetched by `workers` threads, at most 2 x `workers` ahead (as `fit` does)."""

    def __init__(self, dataset, workers: int):
        from concurrent.futures import ThreadPoolExecutor

        self.dataset, self.workers, self.pool = dataset, workers, ThreadPoolExecutor(workers)

    def __iter__(self):
        from collections import deque

        while True:
            pending = deque()
            for index in range(len(self.dataset)):
                pending.append(self.pool.submit(self.dataset.__getitem__, index))
                if len(pending) > 2 * self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
            self.dataset.on_epoch_end()


def time_fit(model, data, warmup: int, steps: int, batch_size: int) -> dict:
    timer = _BatchTimer(warmup)
    model.fit(data, epochs=1, steps_per_epoch=warmup + steps, verbose=0, callbacks=[timer])
    seconds, cpu = timer.end - timer.start, timer.end_cpu - timer.start_cpu
    images = steps * batch_size
    return {"images_per_s": images / seconds, "cpu_ms_per_image": 1000 * cpu / images}


def time_pipeline_alone(data, warmup: int, batches: int, batch_size: int) -> dict:
    iterator = iter(data)
    for _ in range(warmup):
        next(iterator)
    start, start_cpu = time.perf_counter(), cpu_seconds()
    for _ in range(batches):
        next(iterator)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - start_cpu
    images = batches * batch_size
    return {"images_per_s": images / seconds, "cpu_ms_per_image": 1000 * cpu / images}


def median(values):
    return statistics.median(values) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    command = ".venv/bin/python benchmarks/training.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    data = prepare_shards(args.work, args.utkface, args.crop_size, args.demo_count)
    if data["source"] != "utkface_part1":
        print(f"NOTE: {args.utkface} is absent: using the synthetic demo UTKFace set ({data['source']}) instead.")
    train_files = data["files"]["train"]

    import tensorflow as tf

    model, network, training = build_seed(args.input_size, args.width)
    need = args.warmup + args.steps
    bins = len(network.output_bins)
    memory, memory_images = in_memory_dataset(train_files, args.input_size, args.batch_size, need, bins)

    def maker(variant):
        return lambda: pipeline_dataset(
            train_files, args.input_size, args.batch_size, training, variant, args.crop_size
        )

    def loader():
        return loader_batches(train_files, args.input_size, args.batch_size, training, args.loader_workers)

    modes = {"pipeline": maker("package"), "in-memory": lambda: memory, "loader": loader}
    alone_modes = {
        "pipeline alone": "package",
        "pipeline alone, no augmentation": "no-augmentation",
        "loader alone": "loader",
    }
    if args.variants is not None:
        chosen = args.variants or list(VARIANTS)
        modes |= {variant: maker(variant) for variant in chosen}
        alone_modes |= {f"variant alone: {variant}": variant for variant in chosen if variant != "no-augmentation"}
    print(
        f"seed network at {args.input_size}x{args.input_size}, filters {network.filters}, "
        f"{model.count_params():,} parameters; batch {args.batch_size}, {args.warmup} warm-up + {args.steps} "
        f"timed batches per run, {args.runs} runs; {len(train_files)} train shard file(s) from {data['source']} "
        f"({args.crop_size} px crops), {len(data['ages']['train'])} train photos ({memory_images} of them held in "
        f"memory); TF intra/inter-op threads {tf.config.threading.get_intra_op_parallelism_threads()}/"
        f"{tf.config.threading.get_inter_op_parallelism_threads()} (0 = one per core), {os.cpu_count()} cores",
        flush=True,
    )

    # One untimed fit per mode first: traces the train function and warms the page cache.
    for name, make in modes.items():
        time_fit(model, make(), 1, 1, args.batch_size)
    results = {name: [] for name in modes}
    alone = {name: [] for name in alone_modes}
    started = time.perf_counter()
    for run in range(args.runs):
        order = list(modes) if run % 2 == 0 else list(reversed(modes))
        for name in order:
            result = time_fit(model, modes[name](), args.warmup, args.steps, args.batch_size)
            results[name].append(result)
            print(
                f"  run {run + 1}: {name:<34} {result['images_per_s']:7.1f} img/s  "
                f"{result['cpu_ms_per_image']:6.2f} CPU ms/img",
                flush=True,
            )
        for name, variant in alone_modes.items():
            batches = ThreadedBatches(loader(), args.loader_workers) if variant == "loader" else maker(variant)()
            result = time_pipeline_alone(batches, args.warmup, args.pipeline_batches, args.batch_size)
            alone[name].append(result)
            print(
                f"  run {run + 1}: {name:<34} {result['images_per_s']:7.1f} img/s  "
                f"{result['cpu_ms_per_image']:6.2f} CPU ms/img",
                flush=True,
            )

    def ratio(name, key="images_per_s"):
        """Median over runs of the within-run ratio to the in-memory mode (CPU: in-memory cost / this cost)."""
        pairs = zip(results[name], results["in-memory"])
        if key == "images_per_s":
            return median([p[key] / m[key] for p, m in pairs])
        return median([m[key] / p[key] for p, m in pairs])

    def med(rows, key):
        return median([r[key] for r in rows])

    memory_rate = med(results["in-memory"], "images_per_s")
    memory_cpu = med(results["in-memory"], "cpu_ms_per_image")
    labels = {
        "pipeline": "pipeline + model (input.batches, shuffle and augment)",
        "in-memory": "in-memory tensors + model (the floor)",
        "loader": "loader + model (loader.TrainingBatches, a PyDataset, shuffle and augment)",
        **{v: f"{text} + model" for v, text in VARIANTS.items()},
    }
    print(
        f"\n## Training throughput, seed network at {args.input_size}x{args.input_size} "
        f"({data['source']}, batch {args.batch_size}, medians of {args.runs} runs, {os.cpu_count()} cores)\n"
    )
    print("| mode | images/s | ratio to in-memory (wall) | CPU ms/image | ratio to in-memory (CPU) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in modes:
        rows = results[name]
        wall = "1" if name == "in-memory" else f"{ratio(name):.3f}"
        cpu = "1" if name == "in-memory" else f"{ratio(name, 'cpu_ms_per_image'):.3f}"
        print(
            f"| {labels[name]} | {med(rows, 'images_per_s'):.1f} | {wall} | {med(rows, 'cpu_ms_per_image'):.2f} | "
            f"{cpu} |"
        )
    print(
        "\n| without a model | images/s | x in-memory training rate | CPU ms/image | x in-memory training (per CPU s) |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, rows in alone.items():
        rate, cpu = med(rows, "images_per_s"), med(rows, "cpu_ms_per_image")
        print(f"| {name} | {rate:.0f} | {rate / memory_rate:.1f} | {cpu:.2f} | {memory_cpu / cpu:.1f} |")
    pipeline_ratio, pipeline_cpu_ratio = ratio("pipeline"), ratio("pipeline", "cpu_ms_per_image")
    alone_rate = med(alone["pipeline alone"], "images_per_s")
    alone_cpu = med(alone["pipeline alone"], "cpu_ms_per_image")
    print(
        f"\nTarget 1, pipeline + model >= 95 % of in-memory + model: {100 * pipeline_ratio:.1f} % of the wall rate "
        f"-> {'met' if pipeline_ratio >= 0.95 else 'NOT met'}; per CPU second {100 * pipeline_cpu_ratio:.1f} % "
        f"(the ceiling when the model and the input share saturated cores)"
    )
    print(
        f"Target 2, pipeline alone far faster than the model trains on this CPU: {alone_rate:.0f} img/s = "
        f"{alone_rate / memory_rate:.1f}x the in-memory training rate ({memory_rate:.1f} img/s); per CPU second "
        f"{memory_cpu / alone_cpu:.1f}x -> {'met' if alone_rate >= 10 * memory_rate else 'NOT met'} "
        f"(taking 'far' as >= 10x)"
    )
    loader_rate = med(alone["loader alone"], "images_per_s")
    loader_cpu = med(alone["loader alone"], "cpu_ms_per_image")
    print(
        f"Issue 17, the backend-neutral loader alone >= 10x the seed network's training rate: {loader_rate:.0f} "
        f"img/s = {loader_rate / memory_rate:.1f}x the in-memory training rate ({memory_rate:.1f} img/s; "
        f"{args.loader_workers} threads); per CPU second {memory_cpu / loader_cpu:.1f}x -> "
        f"{'met' if loader_rate >= 10 * memory_rate else 'NOT met'}"
    )
    print(f"Timed part: {time.perf_counter() - started:.0f} s")
    print(f"\nCommand: {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
