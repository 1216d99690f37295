"""The registry: the versions of a model with their aliases and headline test scores, and the network a run
logged."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import mlflow
from mlflow import MlflowClient
from mlflow.store.artifact.utils.models import get_model_name_and_version

if TYPE_CHECKING:
    import keras

HEADLINE_METRICS = ("test_mae_years", "test_exact_accuracy")
CARD_HEADLINE_TAG = "model_card.headline"  # set on a version's run by its evaluation (evaluation.model_card)


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


def card_headlines(name: str) -> dict[str, str]:
    """The model card's headline of each version of `name` that has one, by version, newest first."""
    client = MlflowClient()
    versions = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version), reverse=True)
    tags = {v.version: client.get_run(v.run_id).data.tags if v.run_id else {} for v in versions}
    return {str(v): t[CARD_HEADLINE_TAG] for v, t in tags.items() if CARD_HEADLINE_TAG in t}


def keras_model_of_run(client: MlflowClient, run_id: str) -> keras.Model:
    """The Keras model a training run logged (whatever else it logged, such as a serving model)."""
    experiment_id = client.get_run(run_id).info.experiment_id
    for logged in client.search_logged_models([experiment_id], filter_string=f"source_run_id = '{run_id}'"):
        if "keras" in mlflow.models.get_model_info(logged.model_uri).flavors:
            return mlflow.keras.load_model(logged.model_uri)
    raise LookupError(f"MLflow run {run_id} logged no Keras model to re-score")


SYNTHETIC_TAG = "data.synthetic"


def data_tags(model_uri: str) -> dict[str, str]:
    """The `data.*` tags of the registered version a models:/ URI names (by version, alias or stage), of the run
    of a logged model (models:/<model id>) or of a runs:/ URI's run; empty for other URIs."""
    client = MlflowClient()
    if model_uri.startswith("models:/"):
        found = get_model_name_and_version(client, model_uri)
        if len(found) == 2:
            tags = client.get_model_version(*found).tags
        else:  # a logged model's id: the run that logged it
            tags = client.get_run(client.get_logged_model(found[0]).source_run_id).data.tags
    elif model_uri.startswith("runs:/"):
        tags = client.get_run(model_uri.removeprefix("runs:/").split("/")[0]).data.tags
    else:
        return {}
    return {key: value for key, value in tags.items() if key.startswith("data.")}
