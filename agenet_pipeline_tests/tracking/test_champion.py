"""The champion gate against a real MLflow registry (sqlite), with versions of known scores."""

import itertools

import keras
import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from agenet_pipeline.model.architecture import ModelConfig, build_model
from agenet_pipeline.model.batch_prediction import predict_sets
from agenet_pipeline.model.metrics import score
from agenet_pipeline.tracking.champion import (
    CHALLENGER,
    CHAMPION,
    Candidate,
    gate_metric,
    judge,
    rescoring_on,
    split_of_run,
)
from agenet_pipeline.tracking.registry import keras_model_of_run
from agenet_pipeline.tracking.runs import log_network
from agenet_pipeline_tests.formats import write_records

SPLIT = {"utkface": "aaaa", "appa_real": "bbbb"}
MODEL_NAMES = (f"agenet-{i}" for i in itertools.count())


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One store for the module (creating an MLflow database takes seconds); each test has its own model."""
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder}/mlflow.db"
    MlflowClient(uri, registry_uri=uri).create_experiment("agenet", str(folder / "mlartifacts"))  # not ./mlruns
    return uri


@pytest.fixture(scope="module")
def registry(store):
    return MlflowClient(store, registry_uri=store)


class Registry:
    def __init__(self, client):
        self.client = client
        self.name = next(MODEL_NAMES)
        client.create_registered_model(self.name)


@pytest.fixture
def client(registry):
    return Registry(registry)


def register(registry: Registry, mae: float, exact: float = 0.5, split=SPLIT) -> tuple[str, str]:
    """A training run as the age_model asset leaves it (test split hashes, test scores) and a version of it."""
    client = registry.client
    experiment = client.get_experiment_by_name("agenet")
    run = client.create_run(experiment.experiment_id)
    for dataset, digest in split.items():
        client.log_param(run.info.run_id, f"data.test.{dataset}.hash", digest)
    client.log_metric(run.info.run_id, "test_mae_years", mae)
    client.log_metric(run.info.run_id, "test_exact_accuracy", exact)
    client.set_terminated(run.info.run_id)
    version = client.create_model_version(registry.name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    return str(version.version), run.info.run_id


def never(champion):
    raise AssertionError(f"version {champion.version} was re-scored although its split is the same")


def gate(registry: Registry, version, run_id, score, metric="mae", split=SPLIT, rescore=never):
    candidate = Candidate(registry.name, version, run_id, score, split)
    return judge(registry.client, candidate, gate_metric(metric), rescore)


def aliases(registry: Registry):
    return {a: str(v) for a, v in registry.client.get_registered_model(registry.name).aliases.items()}


def version_tags(registry: Registry, version: str) -> dict[str, str]:
    return registry.client.get_model_version(registry.name, version).tags


def test_the_first_version_becomes_champion(client):
    version, run_id = register(client, mae=12.0)
    decision = gate(client, version, run_id, 12.0)
    assert decision.alias == CHAMPION and decision.champion_version is None
    assert aliases(client) == {CHAMPION: version}
    assert version_tags(client, version)["champion_gate.decision"] == CHAMPION


def test_a_worse_version_is_challenger_and_the_decision_is_recorded_with_both_scores(client):
    first, first_run = register(client, mae=12.0)
    gate(client, first, first_run, 12.0)
    second, second_run = register(client, mae=15.5)
    decision = gate(client, second, second_run, 15.5)
    assert decision.alias == CHALLENGER
    assert aliases(client) == {CHAMPION: first, CHALLENGER: second}
    assert decision.champion_scored == "recorded by its training run on the same test split"
    for tags in (version_tags(client, second), client.client.get_run(second_run).data.tags):
        assert tags["champion_gate.decision"] == CHALLENGER
        assert float(tags["champion_gate.score"]) == 15.5
        assert float(tags["champion_gate.champion_score"]) == 12.0
        assert tags["champion_gate.champion_version"] == first
        assert tags["champion_gate.test_split"] == "appa_real=bbbb,utkface=aaaa"


def test_a_better_version_takes_the_champion_alias(client):
    first, first_run = register(client, mae=12.0)
    gate(client, first, first_run, 12.0)
    second, second_run = register(client, mae=9.0)
    assert gate(client, second, second_run, 9.0).alias == CHAMPION
    assert aliases(client) == {CHAMPION: second}


def test_a_tie_does_not_beat_the_champion(client):
    first, first_run = register(client, mae=12.0)
    gate(client, first, first_run, 12.0)
    second, second_run = register(client, mae=12.0)
    assert gate(client, second, second_run, 12.0).alias == CHALLENGER


def test_accuracy_metrics_are_higher_is_better(client):
    first, first_run = register(client, mae=12.0, exact=0.40)
    gate(client, first, first_run, 0.40, metric="exact")
    second, second_run = register(client, mae=20.0, exact=0.45)
    decision = gate(client, second, second_run, 0.45, metric="exact")
    assert decision.alias == CHAMPION and "higher is better" in decision.reason
    with pytest.raises(ValueError, match="mae, exact, one_off"):
        gate_metric("loss")


def test_a_champion_scored_on_another_split_is_re_scored_on_this_one(client):
    first, first_run = register(client, mae=5.0, split={"utkface": "old"})
    gate(client, first, first_run, 5.0, split={"utkface": "old"})
    rescored = []

    def rescore(champion):
        rescored.append(str(champion.version))
        return 14.0  # on the new split the champion is much worse than its old 5.0

    second, second_run = register(client, mae=13.0)
    decision = gate(client, second, second_run, 13.0, rescore=rescore)
    assert rescored == [first]
    assert decision.alias == CHAMPION and decision.champion_score == 14.0
    assert decision.champion_scored == "re-scored on the current test split"
    assert split_of_run(client.client.get_run(second_run).data.params) == SPLIT


def test_gating_the_champion_again_keeps_it(client):
    first, first_run = register(client, mae=12.0)
    gate(client, first, first_run, 12.0)
    assert gate(client, first, first_run, 12.0).alias == CHAMPION
    assert aliases(client) == {CHAMPION: first}


def test_the_keras_model_of_a_run_is_found_among_its_logged_models(registry, store, mlflow_store):
    client = registry
    mlflow_store(store)
    mlflow.set_experiment("agenet")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    with mlflow.start_run() as run:
        mlflow.keras.log_model(model, name="model", pip_requirements=["keras"])  # no slow inference
    loaded = keras_model_of_run(client, run.info.run_id)
    sample = np.ones((1, 4), np.float32)
    np.testing.assert_allclose(loaded.predict_on_batch(sample), model.predict_on_batch(sample), rtol=1e-6)
    with mlflow.start_run() as empty:
        pass
    with pytest.raises(LookupError, match=empty.info.run_id):
        keras_model_of_run(client, empty.info.run_id)


def test_a_champion_tested_on_another_split_is_re_scored_by_its_logged_network(client, store, mlflow_store, tmp_path):
    """The re-scoring path for real: a Keras network logged as training runs log it, TFRecord files of the new
    test split, and the score it gets there computed here directly. The champion's run recorded a better score on
    its old split; the candidate beats only the re-scored one, so it takes the alias only if the network was
    re-scored."""
    ages = np.array([1, 5, 10, 15, 20, 25, 30, 40, 50, 70] * 2)
    files = [
        str(write_records(tmp_path / "test-utkface-00000-of-00001.tfrecord", ages[:12], 7)),
        str(write_records(tmp_path / "test-appa_real-00000-of-00001.tfrecord", ages[12:], 8, dataset="appa_real")),
    ]
    network = build_model(ModelConfig(input_size=32, filters=(8, 16), dense_units=(16,)))
    direct = predict_sets(network, {("test", "utkface"): files[:1], ("test", "appa_real"): files[1:]})
    rescored_mae = score(direct.probabilities, direct.ages).mae
    assert sorted(direct.ages) == sorted(ages)

    mlflow_store(store)
    mlflow.set_experiment("agenet")
    with mlflow.start_run() as run:
        mlflow.log_params({"data.test.utkface.hash": "old", "data.test.appa_real.hash": "old"})
        mlflow.log_metric("test_mae_years", rescored_mae - 2.0)
        log_network(network, 32, 10)
    champion = client.client.create_model_version(client.name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    gate(
        client, str(champion.version), run.info.run_id, rescored_mae - 2.0, split={"utkface": "old", "appa_real": "old"}
    )

    candidate, candidate_run = register(client, mae=rescored_mae - 1.0)
    metric = gate_metric("mae")
    decision = gate(
        client, candidate, candidate_run, rescored_mae - 1.0, rescore=rescoring_on(client.client, files, metric)
    )

    assert decision.champion_scored == "re-scored on the current test split"
    assert decision.champion_score == pytest.approx(rescored_mae, rel=1e-5)
    assert decision.alias == CHAMPION and aliases(client) == {CHAMPION: candidate}
