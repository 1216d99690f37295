"""The served model as one MLflow model: the Keras network, the BlazeFace detector and the code that runs them.

The code is a copy of the few modules the pyfunc needs (`SERVING_CODE`), logged with the model, so that
`mlflow.pyfunc.load_model("models:/agenet@champion")` works in a process that has the libraries but not
this package, and an old version keeps the code it was logged with. MLflow puts that copy first on sys.path
when it loads the model, so a process that also uses this package should import it before loading one (as
the `agenet` command does); a package already imported is the one used.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import cv2
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types.schema import Array, ColSpec, ParamSchema, ParamSpec, Schema

from agenet_pipeline.core.ages import SEED_BINS, AgeBins, network_bins
from agenet_pipeline.demo.synthetic_faces import draw_face
from agenet_pipeline.faces.detector import BLAZEFACE_SHORT_RANGE_SHA256, resolve_model
from agenet_pipeline.faces.settings import FaceSettings
from agenet_pipeline.serving.pyfunc import FACE_DETECTOR, KERAS_MODEL, OUTPUT_COLUMNS, AgeNetModel
from agenet_pipeline.tracking.runs import backend_package, model_backend, pinned_requirements

PACKAGE = Path(__file__).resolve().parents[1]
SERVING_CODE = (
    "__init__.py",
    "core/__init__.py",
    "core/ages.py",
    "core/mirroring.py",
    "core/status.py",
    "faces/__init__.py",
    "faces/crop.py",
    "faces/detector.py",
    "faces/images.py",
    "faces/settings.py",
    "serving/__init__.py",
    "serving/predictor.py",
    "serving/pyfunc.py",
)
SERVING_PACKAGES = (
    "mlflow",
    "keras",
    "mediapipe",
    "opencv-contrib-python",
    "numpy",
    "pandas",
    "pillow",
)  # + the backend


def serving_signature() -> ModelSignature:
    types = {"array": Array("double")}
    outputs = [
        ColSpec(types.get(kind, kind), name, required=name in ("input", "status"))
        for name, kind in OUTPUT_COLUMNS.items()
    ]
    optional = {"required": False}
    return ModelSignature(
        # `image` is base64 text, decoded by the model: MLflow's decoding of a `binary` column refuses the whole
        # request for one bad row, where the model answers that row `invalid_input` and the rest of the batch.
        inputs=Schema([ColSpec("string", "image", **optional), ColSpec("string", "path", **optional)]),
        outputs=Schema(outputs),
        params=ParamSchema([ParamSpec("aligned", "boolean", False)]),
    )


def _request_example() -> pd.DataFrame:
    """One drawn face (no real person), base64-encoded: the request MLflow shows as the serving example."""
    face = cv2.cvtColor(draw_face(35.0, np.random.default_rng(0), 96), cv2.COLOR_RGB2BGR)
    return pd.DataFrame({"image": [base64.b64encode(cv2.imencode(".jpg", face)[1].tobytes()).decode()]})


def _stage_code(folder: Path) -> Path:
    """A copy of SERVING_CODE as the package it belongs to, under `folder`."""
    package = folder / PACKAGE.name
    for relative in SERVING_CODE:
        (package / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PACKAGE / relative, package / relative)
    return package


def log_serving_model(
    model,
    name: str = "serving_model",
    registered_name: str | None = None,
    bins: AgeBins = SEED_BINS,
    settings: FaceSettings | None = None,
) -> ModelInfo:
    """Log the Keras `model` with the face stage as a pyfunc in the active run; registered when a name is given."""
    output = network_bins(model.output_shape[-1])
    if not output.sums_into(bins):
        raise ValueError(f"the model's {len(output)} outputs ({output.name}) do not sum into the {bins.name} bins")
    with tempfile.TemporaryDirectory(prefix="agenet-serving-") as tmp:
        keras_file = Path(tmp) / "agenet.keras"
        model.save(keras_file)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=AgeNetModel(),
            artifacts={KERAS_MODEL: str(keras_file), FACE_DETECTOR: str(resolve_model())},
            code_paths=[str(_stage_code(Path(tmp) / "code"))],
            model_config={
                "bins": bins.name,
                "faces": asdict(settings or FaceSettings()),
                "face_detector_sha256": BLAZEFACE_SHORT_RANGE_SHA256,
                "keras_backend": model_backend(),
            },
            signature=serving_signature(),
            input_example=_request_example(),
            pip_requirements=pinned_requirements(backend_package(), *SERVING_PACKAGES),
            registered_model_name=registered_name,
        )
