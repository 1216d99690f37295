"""The GPU check of issue 17: `seed` and `recommended` trained through the project's own training code (JAX,
no TensorFlow, the backend-neutral loader) on real UTKFace crops, with speed, quality and the smaller model.

Three steps, two machines:

    # here (TensorFlow): the UTKFace chips through the face stage at 128 px, split, written as TFRecord shards
    # (benchmarks/training.py's cache), copied with the wheels the GPU machine lacks into gpu_pack/ (< 64 MiB)
    .venv/bin/python benchmarks/gpu_training.py pack

    # on the GPU machine, as one device call carrying gpu_pack (see benchmarks/README.md for the command)
    python3 benchmarks/gpu_training.py run --pack gpu_pack --out $OUT

    # here: the smaller model back as a .keras file (float32), to score and serve on the CPU
    .venv/bin/python benchmarks/gpu_training.py unpack <files_at>/recommended.float16.npz models/gpu_recommended.keras

`run` trains each recipe at the paper's full widths for `--epochs` (30) epochs on the same split, early stopping off
(patience = epochs; the best epoch's weights are kept), in mixed bfloat16 (`mixed_precision: true`: bfloat16 on a
GPU that has it, float32 on a CPU), at `--input-size` (128: the packed crops' side), batch 32. It reports:
- photos/s of each epoch's training part (its first epoch includes compilation);
- the input's share of the time: a fit of `--probe-steps` batches fed by the loader against the same number fed
  from arrays held in memory (the same compiled network, after a warm-up), `1 - loader rate / memory rate`;
- test exact accuracy, one-off accuracy and MAE beside the constant guesses (most frequent training bin; median
  training age), for both recipes;
and writes to `--out`: results.json, results.md, and the smaller network's weights as float16 with its
configuration (`<recipe>.float16.npz`, < 16 MB).

`run --toy` is the CPU rehearsal: widths x 1/16, 2 epochs, input 64, a few probe steps, same code path:

    KERAS_BACKEND=jax .venv/bin/python benchmarks/gpu_training.py run --pack gpu_pack --out /tmp/gpu-out --toy
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_PACK = REPOSITORY / "gpu_pack"
CROP_SIZE = 128
PACK_LIMIT = 60 * 2**20  # the device call carries 64 MiB in all, the code included
WHEELS = ("keras==3.15.1", "namex==0.1.0", "optree==0.17.0")  # what the GPU machine lacks (it has JAX, no Keras)
ABSENT_THERE = ("tensorflow", "polars", "mlflow", "dagster", "mediapipe")  # must not be needed by `run`
RECIPE_NAMES = ("seed", "recommended")

# ---------------------------------------------------------------------------------------------------------------
# pack (here)
# ---------------------------------------------------------------------------------------------------------------


def _training_benchmark():
    """benchmarks/training.py, for its shard preparation (one cache for the benchmarks)."""
    spec = importlib.util.spec_from_file_location("agenet_bench_training", REPOSITORY / "benchmarks" / "training.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pack(args) -> int:
    bench = _training_benchmark()
    data = bench.prepare_shards(args.work, args.utkface, crop_size=CROP_SIZE)
    if data["source"] != "utkface_part1":
        print(f"{args.utkface} is absent: nothing real to pack")
        return 1
    if args.pack.exists():
        shutil.rmtree(args.pack)
    (args.pack / "shards").mkdir(parents=True)
    files = {}
    for split, paths in data["files"].items():
        files[split] = []
        for path in map(Path, paths):
            shutil.copy(path, args.pack / "shards" / path.name)
            files[split].append(f"shards/{path.name}")
    wheels = args.pack / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
         "--implementation", "cp", "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
         "--platform", "manylinux2014_x86_64", "-d", str(wheels), *WHEELS],
        check=True,
    )  # fmt: skip
    counts = {split: len(ages) for split, ages in data["ages"].items()}
    manifest = {"source": data["source"], "crop_size": CROP_SIZE, "files": files, "examples": counts}
    (args.pack / "pack.json").write_text(json.dumps(manifest, indent=1))
    size = sum(p.stat().st_size for p in args.pack.rglob("*") if p.is_file())
    print(f"{args.pack}: {size / 2**20:.1f} MiB ({counts}; wheels {', '.join(p.name for p in wheels.iterdir())})")
    if size > PACK_LIMIT:
        print(f"too large for the device call: {size / 2**20:.1f} MiB > {PACK_LIMIT / 2**20:.0f} MiB")
        return 1
    return 0


# ---------------------------------------------------------------------------------------------------------------
# run (the GPU machine; the CPU for the rehearsal)
# ---------------------------------------------------------------------------------------------------------------


def record_ages(files: list[str]):
    """The ages of every record of `files`, read without decoding a crop."""
    import numpy as np

    from agenet_pipeline.model.loader import parse_example, record_offsets

    ages = []
    for path in files:
        with open(path, "rb") as file:
            for offset, length in record_offsets(path):
                file.seek(offset)
                ages.append(parse_example(file.read(length))["age"])
    return np.array(ages, np.float64)


def epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Seconds of each epoch's training part (up to its validation)."""

        def __init__(self):
            super().__init__()
            self.seconds, self._start = [], None

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_test_begin(self, logs=None):
            if self._start is not None:
                self.seconds.append(time.perf_counter() - self._start)
                self._start = None

    return EpochTimer()


def input_share(network, training, files: list[str], steps: int) -> dict:
    """Rates of one compiled network fed by the loader and by arrays in memory, `steps` batches each after a
    warm-up, and the loader's share of the time."""
    import keras
    import numpy as np

    from agenet_pipeline.model.devices import accelerators, precision_policy
    from agenet_pipeline.model.training import compiled_model, training_batches

    keras.mixed_precision.set_global_policy(precision_policy(training.mixed_precision, accelerators()))
    try:
        model = compiled_model(network, training)
        loader, _ = training_batches(network, training, files, files)  # the training asset's own batches
        batches = [loader[i] for i in range(min(steps, len(loader)))]
        images, labels = np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])
        rates = {}
        for name, fit in {
            "memory": lambda n: model.fit(images, labels, batch_size=training.batch_size, steps_per_epoch=n, verbose=0),
            "loader": lambda n: model.fit(loader, steps_per_epoch=n, verbose=0),
        }.items():
            fit(2)  # compiles, starts the workers
            start = time.perf_counter()
            fit(len(batches))
            rates[name] = len(batches) * training.batch_size / (time.perf_counter() - start)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return {
        "memory_photos_per_s": rates["memory"],
        "loader_photos_per_s": rates["loader"],
        "input_share": max(0.0, 1 - rates["loader"] / rates["memory"]),
    }


def test_scores(model, files: list[str], input_size: int):
    """`batch_prediction.predict_files`' reading (the loader, both ways) without its polars keys: polars is absent
    on the GPU machine."""
    import numpy as np

    from agenet_pipeline.core.mirroring import output_both_ways
    from agenet_pipeline.model.loader import example_batches
    from agenet_pipeline.model.metrics import score

    probabilities, ages = [], []
    for batch in example_batches(files, input_size, 256):
        probabilities.append(output_both_ways(model.predict_on_batch, batch["image"]))
        ages.append(batch["age"])
    return score(np.concatenate(probabilities).astype(np.float32), np.concatenate(ages))


def train_recipe(name: str, args, files: dict, checkpoints: Path) -> tuple[dict, object, object]:
    from agenet_pipeline.model.recipes import RECIPES
    from agenet_pipeline.model.training import train

    recipe = RECIPES[name]
    network = dataclasses.replace(
        recipe.network,
        input_size=args.input_size,
        filters=tuple(max(1, round(f * args.width)) for f in recipe.network.filters),
        dense_units=tuple(max(1, round(u * args.width)) for u in recipe.network.dense_units),
    )
    training = dataclasses.replace(
        recipe.training,
        max_epochs=args.epochs,
        patience=args.epochs,
        mixed_precision=True,
        loader_workers=args.workers,
    )
    share = input_share(network, training, files["train"], args.probe_steps)
    print(f"{name}: input share {share}", flush=True)
    timer = epoch_timer()
    started = time.perf_counter()
    result = train(network, training, files["train"], files["validation"], checkpoints / name, [timer])
    seconds = time.perf_counter() - started
    train_count = len(record_ages(files["train"]))
    scores = test_scores(result.model, files["test"], network.input_size)
    row = {
        "recipe": name,
        "network": dataclasses.asdict(network),
        "parameters": int(result.model.count_params()),
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "photos_per_s_per_epoch": [round(train_count / s, 1) for s in timer.seconds],
        "training_seconds": round(seconds, 1),
        **share,
        "test": scores.as_dict(),
        "val_loss": result.history.get("val_loss", []),
    }
    print(json.dumps(row), flush=True)
    return row, result.model, network


def save_float16(model, network, path: Path) -> Path:
    import numpy as np

    weights = {f"w{i:03d}": w.astype(np.float16) for i, w in enumerate(model.get_weights())}
    config = json.dumps(dataclasses.asdict(network))
    np.savez_compressed(path, config=np.array(config), **weights)
    return path


def markdown(rows: list[dict], baseline, environment: dict) -> str:
    lines = [
        f"Device: {environment['device']}; JAX {environment['jax']}, Keras {environment['keras']}, "
        f"policy {environment['policy']}",
        "",
        "| recipe | parameters | epochs (best) | photos/s (median epoch, after the first) | input share | "
        "loader / memory photos/s | test exact | one-off | MAE (years) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        rates = sorted(row["photos_per_s_per_epoch"][1:] or row["photos_per_s_per_epoch"])
        test = row["test"]
        lines.append(
            f"| {row['recipe']} | {row['parameters']:,} | {row['epochs']} ({row['best_epoch']}) | "
            f"{rates[len(rates) // 2]:.0f} | {100 * row['input_share']:.1f} % | "
            f"{row['loader_photos_per_s']:.0f} / {row['memory_photos_per_s']:.0f} | {test['exact_accuracy']:.3f} | "
            f"{test['one_off_accuracy']:.3f} | {test['mae_years']:.2f} |"
        )
    lines.append(f"| constant guess | | | | | | {baseline.exact:.3f} | {baseline.one_off:.3f} | {baseline.mae:.2f} |")
    return "\n".join(lines) + "\n"


def run(args) -> int:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    sys.path.insert(0, str(REPOSITORY))
    if args.toy:
        args.width, args.epochs, args.input_size, args.probe_steps = 1 / 16, 2, 64, 4
    import keras

    from agenet_pipeline.model.devices import accelerators, precision_policy
    from agenet_pipeline.model.metrics import constant_guess

    manifest = json.loads((args.pack / "pack.json").read_text())
    files = {split: [str(args.pack / f) for f in paths] for split, paths in manifest["files"].items()}
    args.out.mkdir(parents=True, exist_ok=True)
    devices = accelerators()
    environment = {
        "device": _device_name(),
        "jax": _version("jax"),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "policy": precision_policy(True, devices),
        "gpus": devices.count,
        "workers": args.workers,
        "toy": args.toy,
    }
    print(json.dumps(environment), flush=True)
    rows, models = [], {}
    checkpoints = Path(tempfile.mkdtemp(prefix="agenet-gpu-checkpoints-"))  # not under --out: they stay there
    for name in RECIPE_NAMES:
        row, model, network = train_recipe(name, args, files, checkpoints)
        rows.append(row)
        models[name] = (model, network)
    baseline = constant_guess(record_ages(files["train"]), record_ages(files["test"]))
    smaller = min(rows, key=lambda r: r["parameters"])["recipe"]
    saved = save_float16(*models[smaller], args.out / f"{smaller}.float16.npz")
    imported = [m for m in ABSENT_THERE if m in sys.modules]
    results = {
        "environment": environment,
        "recipes": rows,
        "constant_guess": dataclasses.asdict(baseline),
        "smaller_model": saved.name,
        "smaller_model_mb": round(saved.stat().st_size / 2**20, 2),
        "imported_but_absent_there": imported,
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    table = markdown(rows, baseline, environment)
    (args.out / "results.md").write_text(table)
    print(table)
    print(f"{saved}: {results['smaller_model_mb']} MB; modules the GPU machine lacks, imported: {imported or 'none'}")
    return 1 if imported else 0


def _device_name() -> str:
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return ", ".join(sorted({d.device_kind for d in jax.devices()}))
    return keras.backend.backend()


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "absent"


# ---------------------------------------------------------------------------------------------------------------
# unpack (here)
# ---------------------------------------------------------------------------------------------------------------


def unpack(args) -> int:
    import numpy as np

    sys.path.insert(0, str(REPOSITORY))
    from agenet_pipeline.model.architecture import ModelConfig, build_model
    from agenet_pipeline.model.training import save_model

    saved = np.load(args.weights)
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(str(saved["config"])).items()}
    model = build_model(ModelConfig(**config))
    model.set_weights([saved[k].astype(np.float32) for k in sorted(k for k in saved.files if k != "config")])
    model.compile(loss="categorical_crossentropy")
    save_model(model, args.model)
    digest = hashlib.sha256(args.model.read_bytes()).hexdigest()[:12]
    print(f"{args.model}: {ModelConfig(**config)}, sha256 {digest}")
    return 0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("pack", help="crops and wheels for the GPU machine (here)")
    p.add_argument("--pack", type=Path, default=DEFAULT_PACK)
    p.add_argument("--utkface", type=Path, default=REPOSITORY.parent / "shared" / "data" / "utkface_part1")
    p.add_argument("--work", type=Path, default=Path("/tmp/agenet-bench"))
    r = commands.add_parser("run", help="train, time and score both recipes (the GPU machine)")
    r.add_argument("--pack", type=Path, default=DEFAULT_PACK)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--epochs", type=int, default=30)
    r.add_argument("--input-size", type=int, default=CROP_SIZE)
    r.add_argument("--width", type=float, default=1.0, help="factor on filters and dense units (1: the paper's)")
    r.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1), help="loader threads")
    r.add_argument("--probe-steps", type=int, default=60, help="batches of each input-share measurement")
    r.add_argument("--toy", action="store_true", help="the CPU rehearsal: small, short, same path")
    u = commands.add_parser("unpack", help="the float16 weights back as a float32 .keras file (here)")
    u.add_argument("weights", type=Path)
    u.add_argument("model", type=Path)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return {"pack": pack, "run": run, "unpack": unpack}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
