"""The registry: the versions of a model with their aliases and headline test scores, and the network a run
logged."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import mlflow
from mlflow import MlflowClient

if TYPE_CHECKING:
    import keras

HEADLINE_METRICS = ("test_mae_years", "test_exact_accuracy")


def model_versions(name: str) -> list[dict[str, str]]:
    """One row per version of `name` in the current registry, newest first."""
    client = MlflowClient()
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        return []
    aliases: dict[str, list[str]] = {}
    for alias, version in client.get_registered_model(name).aliases.items():
        aliases.setdefault(str(version), []).append(alias)
    rows = []
    for version in sorted(versions, key=lambda v: int(v.version), reverse=True):
        metrics = client.get_run(version.run_id).data.metrics if version.run_id else {}
        created = dt.datetime.fromtimestamp(version.creation_timestamp / 1000).isoformat(" ", "seconds")
        rows.append(
            {
                "version": str(version.version),
                "aliases": ", ".join(sorted(aliases.get(str(version.version), []))),
                "created": created,
                **{metric: f"{metrics[metric]:.3f}" if metric in metrics else "" for metric in HEADLINE_METRICS},
                "synthetic": version.tags.get(SYNTHETIC_TAG, "unknown"),
                "run_id": version.run_id or "",
            }
        )
    return rows


def keras_model_of_run(client: MlflowClient, run_id: str) -> keras.Model:
    """The Keras model a training run logged (whatever else it logged, such as a serving model)."""
    experiment_id = client.get_run(run_id).info.experiment_id
    for logged in client.search_logged_models([experiment_id], filter_string=f"source_run_id = '{run_id}'"):
        if "keras" in mlflow.models.get_model_info(logged.model_uri).flavors:
            return mlflow.keras.load_model(logged.model_uri)
    raise LookupError(f"MLflow run {run_id} logged no Keras model to re-score")


SYNTHETIC_TAG = "data.synthetic"


def data_tags(model_uri: str) -> dict[str, str]:
    """The `data.*` tags of the registered version (models:/NAME/VERSION or models:/NAME@ALIAS) or of the run
    (runs:/ID/...) that `model_uri` names; empty for other URIs or a model that has none."""
    client = MlflowClient()
    if model_uri.startswith("models:/"):
        name, _, rest = model_uri.removeprefix("models:/").partition("/")
        if "@" in name:
            name, alias = name.split("@", 1)
            tags = client.get_model_version_by_alias(name, alias).tags
        else:
            tags = client.get_model_version(name, rest.split("/")[0]).tags
    elif model_uri.startswith("runs:/"):
        tags = client.get_run(model_uri.removeprefix("runs:/").split("/")[0]).data.tags
    else:
        return {}
    return {key: value for key, value in tags.items() if key.startswith("data.")}
