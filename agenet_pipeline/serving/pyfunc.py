"""The served model: an MLflow pyfunc that takes a batch of photos and answers a row per face.

Input: a DataFrame with a column `image` and/or a column `path`; each row fills one of them.
- `image`: the encoded photo (JPEG, PNG ...) as base64 text, which is what a JSON request sends; from Python also
  its bytes, or an H x W x 3 uint8 RGB array. A row whose text is not base64 is answered `invalid_input`.
- `path`: a file the model's process reads. With the environment variable AGENET_SERVE_ALLOWED_ROOT set when the
  model is loaded, only files inside that folder are read: a relative path is taken from it, symlinks are
  resolved, and a path leading outside (`..`, an absolute path elsewhere, a link out) is `outside_root`, the same
  answer whether or not the file exists. Without the variable, MLflow's scoring server (`mlflow models serve`)
  reads no path at all (`invalid_input`), and a caller in its own process (`mlflow.pyfunc.load_model(...)
  .predict(...)`, `agenet predict`) reads any file it names: it could read them itself.
Param `aligned` (default false): every photo is already a face crop, so detection is skipped.
Output: one row per face, most confident face first, in input order (see OUTPUT_COLUMNS). A photo without a
face has no row; a row that cannot be used has one row with `status` naming why (`unreadable`, `too_large`: over
64 megapixels from its header or 64 MB, `invalid_input`, `outside_root`; `error` for an unexpected failure, its
exception in the detail) and `detail`; the rest of the batch is answered. A batch with neither column is an error
(HTTP 400).

This module travels with the model (see `packaging.py`); it imports only modules that travel too.
"""

import base64
import binascii
import math
import os
import threading
import weakref
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from agenet_pipeline.core.ages import SCHEMES, in_bins
from agenet_pipeline.core.status import ERROR, INVALID_INPUT, OK, TOO_LARGE
from agenet_pipeline.faces.detector import FaceDetector, resolve_model
from agenet_pipeline.faces.images import DEFAULT_MAX_BYTES, ImageRejected
from agenet_pipeline.faces.settings import FaceSettings
from agenet_pipeline.serving.predictor import AgePredictor, Face, face_answer, read_photo

KERAS_MODEL = "keras_model"
FACE_DETECTOR = "face_detector"
INPUT_COLUMNS = ("image", "path")
ALLOWED_ROOT_VARIABLE = "AGENET_SERVE_ALLOWED_ROOT"
# What MLflow's scoring server sets in the process that runs the model: the model's path (`mlflow models serve`,
# before the model is loaded) and its serving flag (once the server is up).
SCORING_SERVER_MARKERS = ("__pyfunc_model_path__", "_MLFLOW_IS_IN_SERVING_ENVIRONMENT")
NO_PATHS = (
    f"this server reads no files: send the photo as 'image', or start the server with {ALLOWED_ROOT_VARIABLE} "
    "set to the folder it may read"
)
# Each column with the MLflow type of its values. Besides `input`, the columns hold Python objects, so that the
# empty cells of a rejected input are None (null in a JSON answer), not NaN.
OUTPUT_COLUMNS = {
    "input": "long",  # position of the photo in the batch
    "status": "string",
    "detail": "string",
    "face": "long",  # 0 for the most confident face of the photo
    "box_x": "long",
    "box_y": "long",
    "box_w": "long",
    "box_h": "long",
    "detector_score": "double",  # None in aligned mode
    "bin": "long",
    "bin_label": "string",
    "age": "double",  # core.ages.answered_age: the median of a per-year output, the expected age of ten bins
    "probabilities": "array",  # of doubles, one per bin
}


class AgeNetModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        config = context.model_config
        # The backend its requirements pin, unless the process chose one or has already imported Keras (whose
        # backend then loads the file: a .keras file loads on every backend).
        os.environ.setdefault("KERAS_BACKEND", config.get("keras_backend", "tensorflow"))
        import keras

        network = keras.models.load_model(context.artifacts[KERAS_MODEL], compile=False)
        detector = FaceDetector(resolve_model(context.artifacts[FACE_DETECTOR], config["face_detector_sha256"]))
        self.predictor = AgePredictor(
            network.predict_on_batch,
            network.input_shape[1],
            detector,
            SCHEMES[config["bins"]],
            FaceSettings.recorded(config["faces"]),
        )
        self.root = allowed_root()
        self._lock = threading.Lock()  # one detector and one network: one batch at a time
        weakref.finalize(self, detector.close)  # before interpreter exit, when MediaPipe can still close it

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        aligned = bool((params or {}).get("aligned", False))
        with self._lock:
            found = {position: self._faces(cell, aligned) for position, cell in enumerate(_cells(model_input))}
            faces = [face for result in found.values() if isinstance(result, list) for face in result]
            probabilities = iter(self.predictor.probabilities(faces))
        rows = []
        for position, result in found.items():
            if isinstance(result, ImageRejected):
                rows.append({"input": position, "status": result.reason, "detail": result.detail})
            else:
                rows += [
                    self._face_row(position, index, face, next(probabilities)) for index, face in enumerate(result)
                ]
        table = pd.DataFrame({name: [row.get(name) for row in rows] for name in OUTPUT_COLUMNS}, dtype=object)
        return table.astype({"input": "int64"})

    def _faces(self, cell: tuple[str, object] | ImageRejected, aligned: bool) -> list[Face] | ImageRejected:
        if isinstance(cell, ImageRejected):
            return cell
        try:
            photo = read_photo(self._photo(*cell), self.predictor.settings.max_pixels, self.root)
            return self.predictor.faces(photo, aligned)
        except ImageRejected as rejection:
            return rejection
        except Exception as error:  # noqa: BLE001 - one photo's failure is its row, not the loss of the batch
            return ImageRejected(ERROR, f"{type(error).__name__}: {error}")

    def _photo(self, column: str, value):
        """What `read_photo` takes for one cell: bytes or an array from `image`, a Path from `path`."""
        if column == "image":
            return from_base64(value) if isinstance(value, str) else value
        if self.root is None and in_scoring_server():
            raise ImageRejected(INVALID_INPUT, NO_PATHS)
        if not isinstance(value, str | os.PathLike) or "\0" in str(value):
            raise ImageRejected(INVALID_INPUT, f"a path must be text without null bytes, not {value!r:.80}")
        return Path(value)

    def _face_row(self, position: int, index: int, face: Face, probabilities: np.ndarray) -> dict:
        return {
            "input": position,
            "status": OK,
            "face": index,
            **dict(zip(("box_x", "box_y", "box_w", "box_h"), map(int, face.box))),
            "detector_score": face.detector_score,
            **face_answer(probabilities, self.predictor.bins),
            "probabilities": [float(p) for p in in_bins(probabilities, self.predictor.bins)],
        }


def allowed_root() -> Path | None:
    """The folder $AGENET_SERVE_ALLOWED_ROOT names, symlinks resolved; None when the variable is not set."""
    folder = os.environ.get(ALLOWED_ROOT_VARIABLE)
    if not folder:
        return None
    root = Path(folder).resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"{ALLOWED_ROOT_VARIABLE}={folder}: not a folder")
    return root


def in_scoring_server() -> bool:
    return any(os.environ.get(name, "").lower() not in ("", "false", "0") for name in SCORING_SERVER_MARKERS)


def from_base64(text: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of a base64 text; white space is ignored (MLflow's own client breaks lines every 76 characters)."""
    compact = "".join(text.split())
    size = len(compact) // 4 * 3 - compact[-2:].count("=")  # the decoded size, known before decoding
    if size > max_bytes:
        raise ImageRejected(TOO_LARGE, f"{size:,} bytes is over the limit of {max_bytes:,} bytes")
    try:
        return base64.b64decode(compact, validate=True)
    except binascii.Error as error:
        raise ImageRejected(INVALID_INPUT, f"the image is not base64 text ({error})") from error


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _cells(model_input) -> list[tuple[str, object] | ImageRejected]:
    """The photo of each input row as (column, value), or the ImageRejected that says why the row has none."""
    if not isinstance(model_input, pd.DataFrame):
        model_input = pd.DataFrame(model_input)
    columns = [c for c in INPUT_COLUMNS if c in model_input.columns]
    if not columns:
        raise MlflowException(
            "the input needs a column 'image' (the encoded photo, base64 text in JSON) or 'path' (a file the model "
            "may read)",
            INVALID_PARAMETER_VALUE,
        )
    cells = []
    for values in model_input[columns].itertuples(index=False):
        given = [(column, value) for column, value in zip(columns, values) if not _missing(value)]
        if len(given) == 1:
            cells.append(given[0])
        else:
            cells.append(
                ImageRejected(INVALID_INPUT, f"a row needs one of {' or '.join(columns)}, it has {len(given)}")
            )
    return cells
