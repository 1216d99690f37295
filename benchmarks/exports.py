"""Each export of the network beside the Keras network, on one CPU core: file size, and p50/p95 latency of the
network alone and of the whole photo-to-age path.

    .venv/bin/python benchmarks/exports.py                  # the demo network with random weights
    .venv/bin/python benchmarks/exports.py --model models:/agenet@champion --tracking-uri sqlite:///$PWD/.agenet/mlflow.db

The model: by default the network `configs/demo.yaml` trains (input 64, filters 16-256, dense 256-128) with random
weights (speed does not depend on them), exported with `serving.exports.export_bundle`, the int8 network calibrated
on the drawn faces below. With `--model`, that registered serving model.

The photos: 640x480 JPEGs with one drawn face each (no real person), a different placement per photo.

What is timed, after 5 calls of warm-up, over `--calls` calls (p50 and p95 in milliseconds):
- network: one face (1 x S x S x 3 float32) through Keras' `predict_on_batch`, the SavedModel's `serving_default`
  signature, ONNX Runtime and LiteRT (float32, float16, int8);
- photo to age: `AgePredictor` with that network: decode the JPEG, detect (BlazeFace), crop as training did, run
  the network; one photo per call.
One core: the process is pinned to one CPU (sched_setaffinity) before any library starts, OMP_NUM_THREADS=1,
TensorFlow's intra- and inter-op pools have one thread, ONNX Runtime's session and LiteRT's interpreter one thread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

PHOTO_SIZE = (640, 480)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="timed calls per row (p50 and p95 over them)")
    parser.add_argument("--model", help="a registered serving model URI (default: the demo network, random weights)")
    parser.add_argument("--tracking-uri", help="the MLflow store holding --model")
    return parser.parse_args(argv)


def one_core() -> int:
    core = sorted(os.sched_getaffinity(0))[0]
    os.sched_setaffinity(0, [core])
    os.environ["OMP_NUM_THREADS"] = "1"
    return core


def photos(count: int) -> list[bytes]:
    import cv2
    import numpy as np

    from agenet_pipeline.demo.synthetic_faces import draw_face

    encoded = []
    for seed in range(count):
        rng = np.random.default_rng(seed)
        scene = np.full((PHOTO_SIZE[1], PHOTO_SIZE[0], 3), rng.integers(60, 200), np.uint8)
        face = draw_face(float(rng.uniform(5, 75)), rng, 200)
        x, y = int(rng.integers(0, PHOTO_SIZE[0] - 200)), int(rng.integers(0, PHOTO_SIZE[1] - 200))
        scene[y : y + 200, x : x + 200] = face
        encoded.append(cv2.imencode(".jpg", cv2.cvtColor(scene, cv2.COLOR_RGB2BGR))[1].tobytes())
    return encoded


def timings(call, calls: int) -> tuple[float, float]:
    """p50 and p95 of `calls` calls of `call(i)` in milliseconds, after 5 calls of warm-up."""
    for i in range(5):
        call(i)
    spent = []
    for i in range(calls):
        started = time.perf_counter()
        call(i)
        spent.append((time.perf_counter() - started) * 1000)
    quantiles = statistics.quantiles(spent, n=20)
    return statistics.median(spent), quantiles[18]


def size_of(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def serving_parts(args: argparse.Namespace):
    from agenet_pipeline.core.ages import SEED_BINS
    from agenet_pipeline.faces.detector import BLAZEFACE_SHORT_RANGE_SHA256, resolve_model
    from agenet_pipeline.faces.settings import FaceSettings
    from agenet_pipeline.serving import exports

    if args.model:
        from agenet_pipeline.tracking.store import connect

        if args.tracking_uri:
            connect(args.tracking_uri)
        return exports.serving_parts(args.model)
    from agenet_pipeline.model.architecture import ModelConfig, build_model

    network = build_model(ModelConfig(input_size=64, filters=(16, 32, 64, 128, 256), dense_units=(256, 128)))
    return exports.ServingParts(network, resolve_model(), BLAZEFACE_SHORT_RANGE_SHA256, SEED_BINS, FaceSettings())


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    core = one_core()
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from agenet_pipeline.faces.detector import FaceDetector
    from agenet_pipeline.serving.bundle import Bundle
    from agenet_pipeline.serving.exports import export_bundle, photo_crops
    from agenet_pipeline.serving.predictor import AgePredictor, read_photo

    parts = serving_parts(args)
    jpegs = photos(args.calls)
    with tempfile.TemporaryDirectory(prefix="agenet-bench-") as tmp:
        for index, data in enumerate(jpegs[:100]):
            (Path(tmp) / f"{index}.jpg").write_bytes(data)
        calibration = photo_crops(parts, sorted(Path(tmp).glob("*.jpg")))
        bundle = Bundle(Path(tmp) / "bundle", export_bundle(parts, Path(tmp) / "bundle", calibration=calibration))
        signature = tf.saved_model.load(str(bundle.network_path("saved_model"))).signatures["serving_default"]
        keras_file = Path(tmp) / "agenet.keras"
        parts.network.save(keras_file)
        networks = {
            "keras": (parts.network.predict_on_batch, keras_file),
            "saved_model": (
                lambda x: next(iter(signature(image=tf.constant(x)).values())).numpy(),
                bundle.network_path("saved_model"),
            ),  # fmt: skip
            **{
                name: (bundle.network(name, threads=1), bundle.network_path(name))
                for name in bundle.networks
                if name != "saved_model"
            },
        }
        face = calibration[:1]
        print(f"one core (CPU {core}), {args.calls} calls per row, input {parts.input_size}; milliseconds")
        print(f"{'network':<16}{'size':>12}{'network p50':>13}{'p95':>8}{'photo p50':>11}{'p95':>8}")
        with FaceDetector(parts.detector) as detector:
            for name, (network, path) in networks.items():
                predictor = AgePredictor(network, parts.input_size, detector, parts.bins, parts.settings)

                def photo_to_age(i: int, predictor=predictor) -> np.ndarray:
                    rgb = read_photo(jpegs[i % len(jpegs)], parts.settings.max_pixels)
                    return predictor.probabilities(predictor.faces(rgb))

                alone = timings(lambda i, network=network: network(face), args.calls)
                whole = timings(photo_to_age, args.calls)
                print(
                    f"{name:<16}{size_of(path) / 1e6:>9.2f} MB{alone[0]:>13.2f}{alone[1]:>8.2f}"
                    f"{whole[0]:>11.2f}{whole[1]:>8.2f}"
                )
                sys.stdout.flush()


if __name__ == "__main__":
    main()
