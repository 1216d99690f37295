"""Serving speed on the CPU: latency of one photo, throughput of a batch, and the webcam loop's frame rate.

    .venv/bin/python benchmarks/inference.py                  # the demo network with random weights
    .venv/bin/python benchmarks/inference.py --model models:/agenet@champion --tracking-uri sqlite:///$PWD/.agenet/mlflow.db

The model: by default the network `configs/demo.yaml` trains (input 64, filters 16-256, dense 256-128), built
with random weights (speed does not depend on the weights), logged as the serving model into a temporary
MLflow store and loaded back with `mlflow.pyfunc.load_model`, exactly as a user loads the champion. With
`--model`, that registered model instead.

The photo: 640x480 JPEG with one drawn face (no real person) in it, a different placement per photo.

What is timed (each repeated `--runs` times; the table gives medians over the runs):
- network call paths, one 1-face batch: `predict_on_batch` (what the served model calls), an eager
  `model(x, training=False)`, and a `tf.function` of the model with a fixed input signature; median per call.
- stages of one photo: decode (`decode_rgb`), detect (`FaceDetector.detect`), crop (square crop + resize),
  network; median per photo.
- end to end: `model.predict(DataFrame({"image": [jpeg bytes]}))`, one photo per call (decode, detect, crop,
  predict, the output table); p50 and p95 over `--photos` calls, after 5 calls of warm-up.
- throughput: 1,000 photos (`--batch-photos`) through `model.predict` in batches of 64; photos per second.
- webcam loop: `webcam.annotated_frames` over a 640x480 video file (`--frames` frames, the face moving), i.e.
  read and decode a frame, detect, crop, predict, draw; frames per second. No window and no video writing.
The process is pinned to `--cores` cores (default 2) before TensorFlow starts. Targets: p50 < 30 ms, webcam
loop >= 15 frames/s.
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
    parser.add_argument("--runs", type=int, default=3, help="timed runs of everything (medians are reported)")
    parser.add_argument("--photos", type=int, default=200, help="single-photo calls per run for p50/p95")
    parser.add_argument("--batch-photos", type=int, default=1000, help="photos for the throughput")
    parser.add_argument("--frames", type=int, default=300, help="frames of the webcam-loop video")
    parser.add_argument("--cores", type=int, default=2, help="cores to pin the process to")
    parser.add_argument("--model", help="a registered serving model URI (default: the demo network, random weights)")
    parser.add_argument("--tracking-uri", help="the MLflow store holding --model")
    return parser.parse_args(argv)


def pin(cores: int) -> list[int]:
    available = sorted(os.sched_getaffinity(0))
    chosen = available[:cores]
    os.sched_setaffinity(0, chosen)
    return chosen


def photo_with_one_face(seed: int) -> bytes:
    import cv2
    import numpy as np

    from agenet_pipeline.demo.synthetic_faces import draw_face

    rng = np.random.default_rng(seed)
    width, height = PHOTO_SIZE
    canvas = np.full((height, width, 3), rng.integers(40, 200, 3), np.uint8)
    face = draw_face(float(rng.integers(5, 80)), rng, 280)
    x, y = int(rng.integers(0, width - 280)), int(rng.integers(0, height - 280))
    canvas[y : y + 280, x : x + 280] = face
    return cv2.imencode(".jpg", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def served_model(args: argparse.Namespace, folder: Path) -> tuple[Path, str]:
    """(a local copy of the serving model, a description of it)."""
    import mlflow

    if args.model:
        if args.tracking_uri:
            mlflow.set_tracking_uri(args.tracking_uri)
            mlflow.set_registry_uri(args.tracking_uri)
        uri, described = args.model, args.model
    else:
        from agenet_pipeline.model.architecture import ModelConfig, build_model
        from agenet_pipeline.serving.packaging import log_serving_model
        from agenet_pipeline.tracking.store import use_experiment

        config = ModelConfig(input_size=64, filters=(16, 32, 64, 128, 256))
        use_experiment(f"sqlite:///{folder / 'mlflow.db'}", "benchmark", str(folder / "artifacts"))
        with mlflow.start_run():
            uri = log_serving_model(build_model(config)).model_uri
        described = "the demo network (input 64, filters 16-256, dense 256-128) with random weights"
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder / "model"))), described


def per_call(function, calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def call_paths(predictor, keras_model, calls: int) -> dict[str, float]:
    import numpy as np
    import tensorflow as tf

    size = predictor.input_size
    x = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype(np.float32)
    graph = tf.function(
        lambda images: keras_model(images, training=False), input_signature=[tf.TensorSpec([None, size, size, 3])]
    )
    paths = {
        "predict_on_batch (served)": lambda: predictor.network(x),
        "model(x, training=False)": lambda: keras_model(x, training=False).numpy(),
        "tf.function of the model": lambda: graph(tf.constant(x)).numpy(),
    }
    for run in paths.values():
        run()
    return {name: statistics.median(per_call(run, calls)) for name, run in paths.items()}


def stages(predictor, photos: list[bytes]) -> dict[str, float]:
    from agenet_pipeline.faces.images import decode_rgb

    times = {"decode": [], "detect": [], "crop": [], "network": []}
    for jpeg in photos:
        t0 = time.perf_counter()
        rgb = decode_rgb(jpeg)
        t1 = time.perf_counter()
        detections = predictor.detector.detect(rgb)
        t2 = time.perf_counter()
        faces = predictor.faces(rgb)  # detects again; the crop time is the difference
        t3 = time.perf_counter()
        predictor.probabilities(faces)
        t4 = time.perf_counter()
        assert len(detections) >= 1 and len(faces) == 1, "the benchmark photo must hold exactly one face"
        times["decode"].append(t1 - t0)
        times["detect"].append(t2 - t1)
        times["crop"].append(max((t3 - t2) - (t2 - t1), 0.0))
        times["network"].append(t4 - t3)
    return {name: statistics.median(values) for name, values in times.items()}


def end_to_end(model, photos: list[bytes]) -> tuple[float, float]:
    import pandas as pd

    for jpeg in photos[:5]:
        model.predict(pd.DataFrame({"image": [jpeg]}))
    times = []
    for jpeg in photos:
        started = time.perf_counter()
        answer = model.predict(pd.DataFrame({"image": [jpeg]}))
        times.append(time.perf_counter() - started)
        assert (answer["status"] == "ok").sum() == 1, answer
    return percentile(times, 50), percentile(times, 95)


def throughput(model, photos: list[bytes], count: int, batch: int = 64) -> float:
    import pandas as pd

    images = [photos[i % len(photos)] for i in range(count)]
    started = time.perf_counter()
    for start in range(0, count, batch):
        model.predict(pd.DataFrame({"image": images[start : start + batch]}))
    return count / (time.perf_counter() - started)


def write_video(path: Path, frames: int) -> None:
    import cv2
    import numpy as np

    from agenet_pipeline.demo.synthetic_faces import draw_face

    face = cv2.cvtColor(draw_face(40.0, np.random.default_rng(0), 260), cv2.COLOR_RGB2BGR)
    width, height = PHOTO_SIZE
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (width, height))
    for i in range(frames):
        frame = np.full((height, width, 3), 110, np.uint8)
        x = int((width - 260) * (0.5 + 0.5 * np.sin(i / 15)))
        frame[100:360, x : x + 260] = face
        writer.write(frame)
    writer.release()


def webcam_fps(predictor, video: Path) -> float:
    from agenet_pipeline.serving.webcam import annotated_frames, open_source

    capture = open_source(str(video))
    started, frames = time.perf_counter(), 0
    for _ in annotated_frames(predictor, capture):
        frames += 1
    capture.release()
    return frames / (time.perf_counter() - started)


def main() -> None:
    args = parse_args()
    cores = pin(args.cores)
    import keras
    import mlflow

    # The package first: loading a serving model puts the model's own partial copy of it on sys.path.
    import agenet_pipeline.demo.synthetic_faces
    import agenet_pipeline.serving.webcam  # noqa: F401

    with tempfile.TemporaryDirectory(prefix="agenet-inference-") as tmp:
        folder = Path(tmp)
        local, described = served_model(args, folder)
        model = mlflow.pyfunc.load_model(str(local))
        predictor = model.unwrap_python_model().predictor
        keras_model = keras.models.load_model(local / "artifacts" / "agenet.keras", compile=False)
        photos = [photo_with_one_face(seed) for seed in range(args.photos)]
        video = folder / "webcam.mp4"
        write_video(video, args.frames)
        results: dict[str, list[float]] = {}
        for run in range(args.runs):
            measured = {
                **{f"network call, {k} (ms)": v * 1000 for k, v in call_paths(predictor, keras_model, 200).items()},
                **{f"stage: {k} (ms)": v * 1000 for k, v in stages(predictor, photos[:100]).items()},
            }
            p50, p95 = end_to_end(model, photos)
            measured["end to end p50 (ms)"], measured["end to end p95 (ms)"] = p50 * 1000, p95 * 1000
            measured[f"throughput, {args.batch_photos} photos in batches of 64 (photos/s)"] = throughput(
                model, photos, args.batch_photos
            )
            measured["webcam loop (frames/s)"] = webcam_fps(predictor, video)
            for key, value in measured.items():
                results.setdefault(key, []).append(value)
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr)

    targets = {
        "end to end p50 (ms)": ("< 30", lambda v: v < 30),
        "webcam loop (frames/s)": (">= 15", lambda v: v >= 15),
    }
    print(
        f"Model: {described}. Photo: {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} JPEG, one face. CPU, {len(cores)} cores, "
        f"{args.runs} runs (medians).\n"
    )
    print("| measure | median | target |")
    print("| --- | ---: | --- |")
    for key, values in results.items():
        value = statistics.median(values)
        target = ""
        if key in targets:
            text, met = targets[key]
            target = f"{text} ({'met' if met(value) else 'NOT met'})"
        print(f"| {key} | {value:.2f} | {target} |")


if __name__ == "__main__":
    main()
