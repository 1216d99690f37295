"""An export bundle read back: its manifest checked, one of its networks loaded into ONNX Runtime or LiteRT, and the
photo-to-age path of the served model (`predictor`) run with it.

No TensorFlow, Keras, MLflow or Dagster: this module and the ones it imports (`core.ages`, `core.status`,
`faces.images`, `faces.crop`, `faces.detector`, `faces.settings`, `serving.predictor`) are what the light
distribution (`lite/`) installs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agenet_pipeline.core.ages import AgeBins, in_bins
from agenet_pipeline.core.status import ERROR, NO_FACE, OK
from agenet_pipeline.faces.detector import FaceDetector, resolve_model
from agenet_pipeline.faces.images import ImageRejected
from agenet_pipeline.faces.settings import FaceSettings
from agenet_pipeline.serving.predictor import AgePredictor, Network, face_answer, read_photo

MANIFEST = "manifest.json"
README = "README.md"
DETECTOR_FILE = "face_detection_short_range.tflite"
# Each network of a bundle: its file (a folder for the SavedModel) and the runtime that runs it.
NETWORKS = {
    "onnx": "agenet.onnx",
    "tflite_float32": "agenet_float32.tflite",
    "tflite_float16": "agenet_float16.tflite",
    "tflite_int8": "agenet_int8.tflite",
    "saved_model": "saved_model",
}
# The columns of `agenet predict`'s table, in order, before the probability of each bin (`p_<label>`).
ANSWER_COLUMNS = (
    "file",
    "status",
    "detail",
    "face",
    "box_x",
    "box_y",
    "box_w",
    "box_h",
    "detector_score",
    "bin",
    "bin_label",
    "age",
)


class BundleError(Exception):
    """A bundle that cannot be used: a file missing or altered, or a manifest that is not an AgeNet bundle's."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundle_files(folder: Path) -> dict[str, str]:
    """Every file under `folder` but the manifest (a SavedModel's too), by its path relative to `folder`, with its
    SHA-256."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    return {p.relative_to(folder).as_posix(): sha256_of(p) for p in files}


def read_manifest(folder: Path) -> dict:
    """The manifest of the bundle in `folder`, once every file it lists is there with its SHA-256."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise BundleError(f"{path}: missing; an AgeNet bundle folder holds {MANIFEST} (written by `agenet export`)")
    try:
        manifest = json.loads(path.read_text())
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as error:
        raise BundleError(f"{path}: not an AgeNet bundle manifest ({error!r})") from error
    for name, expected in files.items():
        file = path.parent / name
        if not file.is_file():
            raise BundleError(f"{file}: missing from the bundle (listed in {MANIFEST})")
        if sha256_of(file) != expected:
            raise BundleError(f"{file}: altered, its SHA-256 is not the one {MANIFEST} lists")
    return manifest


@dataclass(frozen=True)
class Bundle:
    folder: Path
    manifest: dict

    @classmethod
    def open(cls, folder: str | Path) -> Bundle:
        folder = Path(folder)
        return cls(folder, read_manifest(folder))

    @property
    def bins(self) -> AgeBins:
        spec = self.manifest["bins"]
        return AgeBins(spec["name"], tuple(spec["labels"]), tuple(spec["cut_points"]), tuple(spec["midpoints"]))

    @property
    def settings(self) -> FaceSettings:
        return FaceSettings.recorded(self.manifest["face_settings"])

    @property
    def input_size(self) -> int:
        return int(self.manifest["input"]["size"])

    @property
    def networks(self) -> list[str]:
        return [name for name, file in NETWORKS.items() if file in self.manifest["networks"].values()]

    def network_path(self, name: str) -> Path:
        if name not in self.manifest["networks"]:
            raise BundleError(f"{self.folder}: no {name} network in this bundle (it has {', '.join(self.networks)})")
        return self.folder / self.manifest["networks"][name]

    def network(self, name: str, threads: int | None = None) -> Network:
        """The named network as a function of N x S x S x 3 float32 pixels (0-255) to N x bins probabilities."""
        path = self.network_path(name)
        if name == "onnx":
            return onnx_network(path, threads)
        if name.startswith("tflite_"):
            return tflite_network(path, threads)
        raise BundleError(f"{path}: a {name} network runs in TensorFlow (TF Serving), not in the light runtime")

    def predictor(self, network: str | None = None, threads: int | None = None) -> AgePredictor:
        """The photo-to-age path with the bundle's detector, face settings, bins and `network` (default: the ONNX
        network, else the float32 TFLite one)."""
        network = network or next(n for n in ("onnx", "tflite_float32", *self.networks) if n in self.networks)
        run = self.network(network, threads)
        detector = FaceDetector(resolve_model(str(self.folder / DETECTOR_FILE), self.manifest["detector"]["sha256"]))
        return AgePredictor(run, self.input_size, detector, self.bins, self.settings)


def _runtime(module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise BundleError(f"{package} is not installed: pip install {package} (or agenet-lite[litert])") from error


def onnx_network(path: Path, threads: int | None = None) -> Network:
    onnxruntime = _runtime("onnxruntime", "onnxruntime")

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = options.inter_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda pixels: session.run(None, {name: np.asarray(pixels, np.float32)})[0]


def tflite_network(path: Path, threads: int | None = None) -> Network:
    """A TFLite network in LiteRT's interpreter, resized to each batch."""
    litert = _runtime("ai_edge_litert.interpreter", "ai-edge-litert")
    interpreter = litert.Interpreter(model_path=str(path), num_threads=threads)
    source, target = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]

    def run(pixels: np.ndarray) -> np.ndarray:
        pixels = np.ascontiguousarray(pixels, np.float32)
        if tuple(interpreter.get_input_details()[0]["shape"]) != pixels.shape:
            interpreter.resize_tensor_input(source, pixels.shape)
            interpreter.allocate_tensors()
        interpreter.set_tensor(source, pixels)
        interpreter.invoke()
        return interpreter.get_tensor(target).copy()

    interpreter.allocate_tensors()
    return run


def photo_rows(predictor: AgePredictor, file: Path, aligned: bool = False) -> list[dict]:
    """The rows `agenet predict` writes for one file: one per face, `no_face`, or the reason the photo was
    refused (`error` with the exception for an unexpected failure), as the served model answers them."""
    try:
        faces = predictor.faces(read_photo(Path(file), predictor.settings.max_pixels), aligned)
    except ImageRejected as rejection:
        return [{"file": str(file), "status": rejection.reason, "detail": rejection.detail}]
    except Exception as error:  # noqa: BLE001 - one photo's failure is its row, not the loss of the others
        return [{"file": str(file), "status": ERROR, "detail": f"{type(error).__name__}: {error}"}]
    if not faces:
        return [{"file": str(file), "status": NO_FACE}]
    rows = []
    for index, (face, probabilities) in enumerate(zip(faces, predictor.probabilities(faces))):
        x, y, w, h = map(int, face.box)
        row = {"file": str(file), "status": OK, "face": index, "box_x": x, "box_y": y, "box_w": w, "box_h": h}
        row |= {"detector_score": face.detector_score, **face_answer(probabilities, predictor.bins)}
        in_answer_bins = in_bins(probabilities, predictor.bins)
        rows.append(row | {f"p_{label}": float(p) for label, p in zip(predictor.bins.labels, in_answer_bins)})
    return rows


def columns(bins: AgeBins) -> list[str]:
    return [*ANSWER_COLUMNS, *(f"p_{label}" for label in bins.labels)]


def predict_files(predictor: AgePredictor, files: Sequence[Path], aligned: bool = False) -> list[dict]:
    return [row for file in files for row in photo_rows(predictor, file, aligned)]
