"""The age_model_exports asset: the version the age model registered, as a bundle under the home and in its run."""

import json

import mlflow
import numpy as np
import polars as pl
from dagster import materialize

from agenet_pipeline.core.files import write_parquet
from agenet_pipeline.core.home import Home
from agenet_pipeline.demo.synthetic_faces import draw_face
from agenet_pipeline.faces.storage import shard_path, write_shard
from agenet_pipeline.pipeline.assets.exports import age_model_exports
from agenet_pipeline.pipeline.resources import AgeNetHome, MLflowResource
from agenet_pipeline.tracking.runs import ModelRecord
from agenet_pipeline_tests.formats import jpeg


def test_the_registered_version_is_exported_under_the_home_and_logged_to_its_run(registry, tmp_path):
    home = Home.at(tmp_path / "home")
    ModelRecord(registry.run_id, registry.uri, "unused.keras", "agenet", registry.version, ["utkface"]).save(
        home.model_record_path("age_model")
    )
    rng = np.random.default_rng(0)
    crops = [jpeg(draw_face(float(age), rng, 256)) for age in (10, 30, 50)]
    write_shard(
        pl.DataFrame({"row": [0, 1, 2], "status": "ok", "crop_jpeg": crops}),
        shard_path(home.faces_folder("utkface"), 0),
        "test",
    )
    write_parquet(pl.DataFrame({"dataset": "utkface", "row": [0, 1, 2], "split": "train"}), home.splits_path)
    client = mlflow.MlflowClient(registry.uri, registry_uri=registry.uri)
    client.set_model_version_tag("agenet", registry.version, "data.datasets", "utkface=3")
    try:
        result = materialize(
            [age_model_exports],
            resources={"home": AgeNetHome(path=str(home.root)), "mlflow": MLflowResource(tracking_uri=registry.uri)},
        )
    finally:
        client.delete_model_version_tag("agenet", registry.version, "data.datasets")
    folder = home.root / "exports" / f"agenet-v{registry.version}"
    metadata = result.asset_materializations_for_node("age_model_exports")[0].metadata
    assert metadata["bundle"].value == str(folder)
    assert metadata["networks"].value == "tflite_float32, tflite_float16, tflite_int8, onnx, saved_model"
    assert json.loads((folder / "manifest.json").read_text())["source"]["version"] == registry.version
    logged = {item.path for item in client.list_artifacts(registry.run_id, "exports")}
    assert f"exports/agenet-v{registry.version}" in logged
