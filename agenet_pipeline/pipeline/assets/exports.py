"""The registered version in the formats other runtimes take: TFLite (float32, float16, int8), ONNX, SavedModel.

Not part of full_job (each export imports TensorFlow and converts the network four ways: seconds the tests of
full_job would pay on every run); `exports_job` runs it after the champion gate.
"""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from agenet_pipeline.pipeline.assets.evaluation import champion_gate
from agenet_pipeline.pipeline.resources import AgeNetHome, MLflowResource

GROUP = "exports"


@asset(group_name=GROUP, deps=[champion_gate], kinds={"tensorflow", "onnx", "mlflow"})
def age_model_exports(context: AssetExecutionContext, home: AgeNetHome, mlflow: MLflowResource) -> MaterializeResult:
    """The age model's registered version as a bundle (networks, detector, face settings, bins, manifest with
    checksums, README), under <home>/exports and in its MLflow run under exports/."""
    from agenet_pipeline.serving.exports import export_version

    folder, manifest = export_version(home.folder, mlflow.store(home.folder).tracking_uri, mlflow.registered_model)
    sizes = {name: (folder / file).stat().st_size for name, file in manifest["networks"].items() if "tflite" in name}
    context.log.info(f"{', '.join(manifest['networks'])} written to {folder}")
    return MaterializeResult(
        metadata={
            "bundle": MetadataValue.path(str(folder)),
            "networks": ", ".join(manifest["networks"]),
            **{f"{name} bytes": size for name, size in sizes.items()},
            "model version": manifest["source"]["version"],
            "mlflow run id": manifest["source"]["run_id"],
            "readme": MetadataValue.md((folder / "README.md").read_text()),
        }
    )
