"""The served model's network in the formats other runtimes take, with what those runtimes need besides it.

A bundle folder holds:
- `agenet_float32.tflite`, `agenet_float16.tflite` (float16 weights) and `agenet_int8.tflite` (int8 convolutions,
  weights and activations, calibrated on training crops; the dense head in float32; float32 in and out) for
  TFLite / LiteRT;
- `agenet.onnx` (opset ONNX_OPSET) for ONNX Runtime;
- `saved_model/` with a `serving_default` signature for TF Serving;
- the BlazeFace detector file, and `manifest.json`: the face settings the training crops were made with, the bins,
  the input size, the model it came from and the SHA-256 of every file; `README.md` states the contract.
`serving.bundle` reads it back without TensorFlow.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from agenet_pipeline.core.ages import SCHEMES, YEARS, AgeBins, network_bins
from agenet_pipeline.core.files import write_bytes
from agenet_pipeline.core.home import Home
from agenet_pipeline.faces.crop import context_border, decode_crop
from agenet_pipeline.faces.detector import resolve_model
from agenet_pipeline.faces.settings import FaceSettings
from agenet_pipeline.faces.storage import read_faces
from agenet_pipeline.serving.bundle import DETECTOR_FILE, MANIFEST, NETWORKS, README, bundle_files
from agenet_pipeline.serving.pyfunc import FACE_DETECTOR, KERAS_MODEL

FORMATS = {
    "tflite": ("tflite_float32", "tflite_float16", "tflite_int8"),
    "onnx": ("onnx",),
    "saved_model": ("saved_model",),
}
# The newest opset tf2onnx 1.17 (Keras' ONNX exporter for TensorFlow) writes (its opset table ends at 18; its default
# is 15); onnxruntime 1.32 runs it.
ONNX_OPSET = 18
CALIBRATION_CROPS = 200
FLOAT_OPS = ["FULLY_CONNECTED", "SOFTMAX"]  # left in float32 in the int8 network (see _int8)
SERVING_CONFIG = ("bins", "faces", "face_detector_sha256")


class NotAnAgeNetModel(ValueError):
    """A model that is not an AgeNet serving model; the message names what it lacks."""


@dataclass(frozen=True)
class ServingParts:
    """What an AgeNet serving model is made of."""

    network: object  # keras.Model
    detector: Path
    detector_sha256: str
    bins: AgeBins
    settings: FaceSettings

    @property
    def input_size(self) -> int:
        return int(self.network.input_shape[1])


def serving_parts(model_uri: str) -> ServingParts:
    """The parts of the AgeNet serving model at `model_uri`; NotAnAgeNetModel names what is missing."""
    import keras
    import mlflow
    from mlflow.models import Model

    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    if not (folder / "MLmodel").is_file():
        raise NotAnAgeNetModel(f"{model_uri} is not an MLflow model: it has no MLmodel file")
    pyfunc = Model.load(folder).flavors.get("python_function", {})
    config, artifacts = pyfunc.get("config") or {}, pyfunc.get("artifacts") or {}
    missing = [f"config '{key}'" for key in SERVING_CONFIG if key not in config]
    missing += [f"artifact '{name}'" for name in (KERAS_MODEL, FACE_DETECTOR) if name not in artifacts]
    if missing:
        raise NotAnAgeNetModel(
            f"{model_uri} is not an AgeNet serving model (logged by serving.packaging.log_serving_model): its "
            f"python_function flavor lacks {', '.join(missing)}"
        )
    if config["bins"] not in SCHEMES:
        raise NotAnAgeNetModel(f"{model_uri}: unknown age bins {config['bins']!r} (known: {', '.join(SCHEMES)})")
    network = keras.models.load_model(folder / artifacts[KERAS_MODEL]["path"], compile=False)
    detector = resolve_model(str(folder / artifacts[FACE_DETECTOR]["path"]), config["face_detector_sha256"])
    return ServingParts(
        network,
        detector,
        config["face_detector_sha256"],
        SCHEMES[config["bins"]],
        FaceSettings.recorded(config["faces"]),
    )


def training_crops(
    home: Home, datasets: Sequence[str], settings: FaceSettings, input_size: int, limit: int = CALIBRATION_CROPS
) -> np.ndarray:
    """Up to `limit` network inputs of the training split, as training decodes them, spread over `datasets`."""
    if not home.splits_path.is_file():
        raise FileNotFoundError(f"{home.splits_path}: no data splits, so no training crops to calibrate int8 on")
    train = pl.read_parquet(home.splits_path, columns=["dataset", "row", "split"]).filter(pl.col("split") == "train")
    per_dataset = max(limit // max(len(datasets), 1), 1)
    crops = []
    for dataset in datasets:
        rows = train.filter(pl.col("dataset") == dataset)["row"].head(per_dataset * 2)
        faces = read_faces(home.faces_folder(dataset), ["row", "status", "crop_jpeg"], rows)
        jpegs = faces.filter(pl.col("status") == "ok")["crop_jpeg"].head(per_dataset)
        crops += [decode_crop(jpeg, settings.crop_size, input_size) for jpeg in jpegs]
    if not crops:
        raise FileNotFoundError(f"no training crops of {', '.join(datasets)} under {home.root}")
    return np.stack(crops[:limit]).astype(np.float32)


def _tflite(saved_model: Path, kind: str, calibration: np.ndarray | None) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if kind == "tflite_float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif kind == "tflite_int8":
        return _int8(converter, calibration)
    return converter.convert()


def _int8(converter, calibration: np.ndarray | None) -> bytes:
    """Int8 convolutions (weights and activations, calibrated on `calibration`); the dense head and the softmax in
    float32. Quantising the head too turns near ties into flips: on the demo champion's 585 test crops (soft labels,
    a fifth of them with their two best bins under 0.02 apart) the top bin agreed with Keras on 94.7% with an int8
    head and on 98.8% with a float one, for 0.81 MB instead of 0.52 MB (float32: 1.98 MB)."""
    import tensorflow as tf

    if calibration is None or not len(calibration):
        raise ValueError("the int8 TFLite network needs calibration crops")
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([crop[None]] for crop in calibration)
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=converter.representative_dataset,
        debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=FLOAT_OPS),
    )
    return debugger.get_nondebug_quantized_model()


def write_networks(network, folder: Path, kinds: Sequence[str], calibration: np.ndarray | None) -> dict[str, str]:
    """Each network of `kinds` under `folder`, by kind its file name."""
    with tempfile.TemporaryDirectory(prefix="agenet-export-") as tmp:
        saved_model = Path(tmp) / "saved_model"
        network.export(str(saved_model), format="tf_saved_model", verbose=False)
        for kind in kinds:
            target = folder / NETWORKS[kind]
            if kind == "saved_model":
                shutil.copytree(saved_model, target)
            elif kind == "onnx":
                network.export(str(target), format="onnx", verbose=False, opset_version=ONNX_OPSET)
            else:
                write_bytes(target, _tflite(saved_model, kind, calibration))
    return {kind: NETWORKS[kind] for kind in kinds}


def export_bundle(
    parts: ServingParts,
    output: Path,
    formats: Sequence[str] = tuple(FORMATS),
    calibration: np.ndarray | None = None,
    source: dict[str, str] | None = None,
) -> dict:
    """Write the bundle of `parts` in the new folder `output` (written beside it, then renamed); its manifest."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown export format(s) {', '.join(unknown)}: choose from {', '.join(FORMATS)}")
    if output.exists() and any(output.iterdir()):
        raise FileExistsError(f"{output}: not empty; export into a new folder")
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}-", dir=output.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the bundle is meant to be shared
    try:
        kinds = [kind for fmt in FORMATS if fmt in formats for kind in FORMATS[fmt]]
        networks = write_networks(parts.network, staging, kinds, calibration)
        shutil.copy2(parts.detector, staging / DETECTOR_FILE)
        manifest = bundle_manifest(parts, networks, source or {})
        (staging / README).write_text(bundle_readme(manifest))
        manifest["files"] = bundle_files(staging)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if output.exists():
            output.rmdir()
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def bundle_manifest(parts: ServingParts, networks: dict[str, str], source: dict[str, str]) -> dict:
    bins, output = parts.bins, network_bins(parts.network.output_shape[-1])
    return {
        "format": "agenet-bundle/1",
        "source": source,
        "networks": networks,
        "input": {
            "name": parts.network.inputs[0].name,
            "shape": [None, parts.input_size, parts.input_size, 3],
            "dtype": "float32",
            "size": parts.input_size,
            "pixels": "RGB, 0-255 (not scaled)",
        },
        "output": {
            "shape": [None, len(output)],
            "dtype": "float32",
            "meaning": f"softmax over the output bins ({output.name})",
            "bins": {**asdict(output), "labels": list(output.labels)},
        },
        "bins": {**asdict(bins), "labels": list(bins.labels)},
        "face_settings": asdict(parts.settings),
        "detector": {"file": DETECTOR_FILE, "sha256": parts.detector_sha256},
    }


def bundle_readme(manifest: dict) -> str:
    size, settings, bins = manifest["input"]["size"], manifest["face_settings"], manifest["bins"]
    output = manifest["output"]["bins"]
    files = "\n".join(f"- `{file}`: {kind}" for kind, file in manifest["networks"].items())
    return f"""# AgeNet age-estimation bundle

Source: {manifest["source"].get("model_uri", "?")} (version {manifest["source"].get("version", "?")}).
`{MANIFEST}` holds the same facts as JSON, with the SHA-256 of every file: check them before use.

## Networks
{files}

Every network takes the same input and gives the same output:
- input: float32, shape (N, {size}, {size}, 3): RGB pixels 0-255, not scaled (the network scales them);
- output: float32, shape (N, {len(output["labels"])}): probabilities of the {_output_bins(output)}.
The int8 TFLite network has int8 convolutions and a float32 dense head; its input and output are float32 too.

## From a photo to the network's input (as the training crops were made)
1. Decode the photo to 8-bit RGB (EXIF orientation applied).
2. Detect faces with `{DETECTOR_FILE}` (MediaPipe BlazeFace short range, MediaPipe Tasks FaceDetector). Keep a face
   when its score is at least {settings["min_score"]} and its longer side at least {settings["min_face_size"]} pixels.
3. Crop a square centred on the face's box, its side the box's longer side plus {settings["margin"]} of it on each
   side; parts outside the photo are black. Resize it to {settings["crop_size"]} pixels a side: bilinear, after an
   area-averaging shrink by a whole factor when the square is over twice that size.{_context_step(settings)}
4. Encode that crop as JPEG quality {settings["jpeg_quality"]}, decode it again, and resize to {size} x {size}
   (area averaging; libjpeg's reduced-size decoding when {settings["crop_size"]} is 2, 4 or 8 times {size}).

## Reading the output
Run the network on the face and on its mirror image (columns in reverse order: left and right swapped), and take
the mean of the two outputs: the model's answer is read from that mean.
{_reading(output, bins)}
"""


def _context_step(settings: dict) -> str:
    border = context_border(settings["crop_size"], settings["margin"], settings.get("context"))
    if not border:
        return ""
    return (
        f" Then make the outer {border} pixels on each side of it black: only {settings['context']} times the box's"
        " longer side around the face is kept."
    )


def _output_bins(output: dict) -> str:
    kind = "years of life" if output["name"] == YEARS.name else "age bins"
    return f"{kind} {_listed(output['labels'])}"


def _listed(items: list[str]) -> str:
    """The items, a long list shortened to its first two and its last."""
    return ", ".join(items) if len(items) <= 12 else f"{items[0]}, {items[1]}, ..., {items[-1]}"


def _reading(output: dict, bins: dict) -> str:
    """How the age and the bin are read from the output (`core.ages.answered_age`, `core.ages.predicted_bins`)."""
    if output["name"] != YEARS.name:
        midpoints = _listed([f"{m:g}" for m in output["midpoints"]])
        return (
            "The age is the expected age: the probabilities weighted by the midpoints of the output bins "
            f"({midpoints} years). The bin is the most probable one."
        )
    labels = ", ".join(bins["labels"])
    return (
        "The age is the median, in whole years: with k the first year (0, 1, ..., 100 for 100+) at which the "
        "running sum of the probabilities reaches 0.5, p the probability of year k and C the sum of those before "
        "it, the age is k - 0.5 + (0.5 - C) / p.\n"
        f"The bin is the one that holds year k (the bins are {labels} in whole years); a bin's probability is the "
        "sum of the probabilities of the years in it."
    )


@dataclass(frozen=True)
class Version:
    """Where a model URI points in the registry: the run that logged it and the datasets it was trained on."""

    model_uri: str
    version: str
    run_id: str
    datasets: tuple[str, ...]

    @property
    def source(self) -> dict[str, str]:
        return {"model_uri": self.model_uri, "version": self.version, "run_id": self.run_id}


def registered_version(model_uri: str) -> Version:
    """The registered version a models:/ URI names (by version or alias); version and run empty for other URIs."""
    from mlflow import MlflowClient
    from mlflow.store.artifact.utils.models import get_model_name_and_version

    from agenet_pipeline.tracking.registry import data_tags

    found = get_model_name_and_version(MlflowClient(), model_uri) if model_uri.startswith("models:/") else ()
    if len(found) != 2:
        return Version(model_uri, "", "", ())
    version = MlflowClient().get_model_version(*found)
    datasets = data_tags(model_uri).get("data.datasets", "")
    names = tuple(item.split("=")[0] for item in datasets.split(",") if item)
    return Version(model_uri, str(version.version), version.run_id or "", names)


def photo_crops(parts: ServingParts, photos: Sequence[Path]) -> np.ndarray:
    """The network inputs the served model makes of `photos` (their first face each)."""
    from agenet_pipeline.faces.detector import FaceDetector
    from agenet_pipeline.faces.images import ImageRejected
    from agenet_pipeline.serving.predictor import AgePredictor, read_photo

    with FaceDetector(parts.detector) as detector:
        predictor = AgePredictor(lambda x: x, parts.input_size, detector, parts.bins, parts.settings)
        crops = []
        for photo in photos:
            try:
                crops += [face.pixels for face in predictor.faces(read_photo(photo, parts.settings.max_pixels))[:1]]
            except ImageRejected:
                continue
    if not crops:
        raise ValueError(f"no face found in the {len(photos)} calibration photos")
    return np.stack(crops).astype(np.float32)


def export_model(
    model_uri: str,
    output: Path,
    formats: Sequence[str] = tuple(FORMATS),
    calibration_photos: Sequence[Path] = (),
    home: Home | None = None,
    log: bool = True,
) -> dict:
    """The bundle of the serving model at `model_uri` in `output`, logged to its registered version's run under
    `exports/` when `log`. The int8 network is calibrated on `calibration_photos`, else on the training crops of
    the version's datasets in `home`."""
    parts = serving_parts(model_uri)
    version = registered_version(model_uri)
    calibration = None
    if "tflite" in formats:
        if calibration_photos:
            calibration = photo_crops(parts, calibration_photos)
        elif version.datasets:
            calibration = training_crops(home or Home.at(), version.datasets, parts.settings, parts.input_size)
        else:
            raise ValueError(f"{model_uri} names no training datasets: give photos to calibrate the int8 network on")
    manifest = export_bundle(parts, output, formats, calibration, version.source)
    if log and version.run_id:
        from mlflow import MlflowClient

        MlflowClient().log_artifacts(version.run_id, str(output), f"exports/{output.name}")
    return manifest


def export_version(home: Home, tracking_uri: str, registered_name: str) -> tuple[Path, dict]:
    """The bundle of the version the age model registered, in `<home>/exports/<name>-v<version>` (written again
    when it is there), logged to its MLflow run; the folder and the manifest."""
    from agenet_pipeline.evaluation.model_report import MODEL, model_record
    from agenet_pipeline.tracking.store import connect

    record = model_record(home)
    if record.version is None or record.registered_model != registered_name:
        raise ValueError(f"{home.model_record_path(MODEL)} names no version of {registered_name!r} to export")
    connect(tracking_uri)
    folder = home.root / "exports" / f"{registered_name}-v{record.version}"
    if folder.exists():
        shutil.rmtree(folder)
    return folder, export_model(f"models:/{registered_name}/{record.version}", folder, home=home)
