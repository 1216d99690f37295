"""Training images per second of the paper's `seed` network on one GPU (issue 3's device check).

Runs with Keras 3 on whatever backend is installed (the device machines have JAX, not TensorFlow), so the network
is built from `agenet_pipeline/model/architecture.py` loaded by file path: importing the package would import
Dagster and TensorFlow. The photos are random pixels (speed does not depend on them), either one batch already
on the device and stepped with `train_on_batch`, or arrays in host memory fed by `fit`. Each number is the median
of `--runs` timed repeats after a compiling warm-up.

    KERAS_BACKEND=jax python benchmarks/gpu_training_step.py --runs 5

The device machines have JAX but no Keras: carry the wheels (keras, namex, optree for Python 3.12; see the
benchmarks README) and install them with `pip install --no-index --no-deps --target /tmp/k` first.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras
import numpy as np

ARCHITECTURE = Path(__file__).resolve().parents[1] / "agenet_pipeline" / "model" / "architecture.py"


def architecture():
    spec = importlib.util.spec_from_file_location("agenet_architecture", ARCHITECTURE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def compiled(input_size: int, precision: str) -> keras.Model:
    keras.mixed_precision.set_global_policy(precision)
    arch = architecture()
    model = arch.build_model(arch.ModelConfig(input_size=input_size))  # the seed network at this size
    model.compile(optimizer=keras.optimizers.Adam(3e-4), loss="categorical_crossentropy")
    return model


def timed(function, repeats: int) -> list[float]:
    function()  # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def per_step(model, images, labels, steps: int):
    """`steps` calls of train_on_batch on one batch already on the device: each call waits for its step."""
    images, labels = keras.ops.convert_to_tensor(images), keras.ops.convert_to_tensor(labels)
    return lambda: [model.train_on_batch(images, labels) for _ in range(steps)]


def whole_fit(model, images, labels, batch: int):
    """One epoch of `fit` over arrays in host memory: Keras feeds the device batch by batch."""
    return lambda: model.fit(images, labels, batch_size=batch, epochs=1, verbose=0, shuffle=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input-size", type=int, default=256)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--steps", type=int, default=50, help="training steps per timed repeat")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--precisions", nargs="+", default=["float32", "mixed_float16", "mixed_bfloat16"])
    args = parser.parse_args()

    print(f"keras {keras.__version__}, backend {keras.backend.backend()}")
    if keras.backend.backend() == "jax":
        import jax

        print(f"jax {jax.__version__}, devices {jax.devices()}")
    rng = np.random.default_rng(0)
    rows = []
    for precision in args.precisions:
        model = compiled(args.input_size, precision)
        for batch in args.batch_sizes:
            count = batch * args.steps
            images = rng.uniform(0, 255, (count, args.input_size, args.input_size, 3)).astype("float32")
            labels = keras.utils.to_categorical(rng.integers(0, 10, count), 10)
            feeds = {
                "train_on_batch, batch on device": per_step(model, images[:batch], labels[:batch], args.steps),
                "fit, arrays in host memory": whole_fit(model, images, labels, batch),
            }
            for feed, function in feeds.items():
                seconds = statistics.median(timed(function, args.runs))
                rows.append((precision, batch, feed, count / seconds))
                print(f"  {precision} batch {batch} {feed}: {rows[-1][3]:,.0f} img/s", flush=True)
        keras.backend.clear_session()

    print(
        f"\nseed network, {args.input_size}x{args.input_size}, Adam 3e-4, medians of {args.runs} x {args.steps} steps\n"
    )
    print("| precision | batch | feed | training images/s |")
    print("| --- | ---: | --- | ---: |")
    for precision, batch, feed, rate in rows:
        print(f"| {precision} | {batch} | {feed} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
