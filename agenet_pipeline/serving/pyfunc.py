"""The served model: an MLflow pyfunc that takes a batch of photos and answers a row per face.

Input: a DataFrame with a column `image` (encoded photo bytes, base64 in a JSON request; from Python also an
H x W x 3 uint8 RGB array) and/or a column `path` (a file the serving process can read); each row fills one.
Param `aligned` (default false): every photo is already a face crop, so detection is skipped.
Output: one row per face, most confident face first, in input order (see OUTPUT_COLUMNS). A photo without a
face has no row; a row that cannot be used has one row with `status` naming why (`unreadable`, `too_large`,
`invalid_input`; `error` for an unexpected failure, its exception in the detail) and `detail`; the rest of the
batch is answered.

This module travels with the model (see `packaging.py`); it imports only modules that travel too.
"""

import math
import threading
import weakref

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from agenet_pipeline.core.ages import SCHEMES
from agenet_pipeline.core.status import ERROR, INVALID_INPUT, OK
from agenet_pipeline.faces.detector import FaceDetector, resolve_model
from agenet_pipeline.faces.images import ImageRejected
from agenet_pipeline.faces.settings import FaceSettings
from agenet_pipeline.serving.predictor import AgePredictor, Face, face_answer, read_photo

KERAS_MODEL = "keras_model"
FACE_DETECTOR = "face_detector"
INPUT_COLUMNS = ("image", "path")
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
    "age": "double",  # the expected age: bin midpoints weighted by the probabilities
    "probabilities": "array",  # of doubles, one per bin
}


class AgeNetModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        import keras

        config = context.model_config
        network = keras.models.load_model(context.artifacts[KERAS_MODEL], compile=False)
        detector = FaceDetector(resolve_model(context.artifacts[FACE_DETECTOR], config["face_detector_sha256"]))
        self.predictor = AgePredictor(
            network.predict_on_batch,
            network.input_shape[1],
            detector,
            SCHEMES[config["bins"]],
            FaceSettings(**config["faces"]),
        )
        self._lock = threading.Lock()  # one detector and one network: one batch at a time
        weakref.finalize(self, detector.close)  # before interpreter exit, when MediaPipe can still close it

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        aligned = bool((params or {}).get("aligned", False))
        with self._lock:
            found = {position: self._faces(item, aligned) for position, item in enumerate(_items(model_input))}
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

    def _faces(self, item, aligned: bool) -> list[Face] | ImageRejected:
        if isinstance(item, ImageRejected):
            return item
        try:
            return self.predictor.faces(read_photo(item, self.predictor.settings.max_pixels), aligned)
        except ImageRejected as rejection:
            return rejection
        except Exception as error:  # noqa: BLE001 - one photo's failure is its row, not the loss of the batch
            return ImageRejected(ERROR, f"{type(error).__name__}: {error}")

    def _face_row(self, position: int, index: int, face: Face, probabilities: np.ndarray) -> dict:
        return {
            "input": position,
            "status": OK,
            "face": index,
            **dict(zip(("box_x", "box_y", "box_w", "box_h"), map(int, face.box))),
            "detector_score": face.detector_score,
            **face_answer(probabilities, self.predictor.bins),
            "probabilities": [float(p) for p in probabilities],
        }


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _items(model_input) -> list:
    """The photo of each input row, or the ImageRejected that says why the row has none."""
    if not isinstance(model_input, pd.DataFrame):
        model_input = pd.DataFrame(model_input)
    columns = [c for c in INPUT_COLUMNS if c in model_input.columns]
    if not columns:
        raise MlflowException(
            "the input needs a column 'image' (encoded photo bytes, base64 in JSON) or 'path' (a file the "
            "serving process can read)",
            INVALID_PARAMETER_VALUE,
        )
    items = []
    for values in model_input[columns].itertuples(index=False):
        given = [v for v in values if not _missing(v)]
        if len(given) == 1:
            items.append(given[0])
        else:
            items.append(
                ImageRejected(INVALID_INPUT, f"a row needs one of {' or '.join(columns)}, it has {len(given)}")
            )
    return items
