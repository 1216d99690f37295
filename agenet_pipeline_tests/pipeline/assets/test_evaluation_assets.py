"""End to end on the demo data: every asset materialised, then the age model trained a second time."""

import mlflow
import pytest
from dagster import materialize

from agenet_pipeline.pipeline.assets.training import age_model
from agenet_pipeline.pipeline.jobs import DATA_ASSETS, EVALUATION_ASSETS, TRAINING_ASSETS
from agenet_pipeline.pipeline.resources import AgeNetHome, DatasetRoots, FaceDetectorResource, MLflowResource
from agenet_pipeline.tracking.champion import CHALLENGER, CHAMPION

pytestmark = pytest.mark.slow

TINY = {"input_size": 32, "filters": [8, 16], "dense_units": [16], "max_epochs": 2}


def resources(home):
    return {
        "home": AgeNetHome(path=str(home)),
        "dataset_roots": DatasetRoots(demo_images=60),
        "face_detector": FaceDetectorResource(),
        "mlflow": MLflowResource(),
    }


def metadata(result, asset):
    [materialization] = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in materialization.metadata.items()}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    config = {
        "preliminary_model": {"config": TINY},
        "age_model": {"config": TINY},
        "adience_benchmark": {"config": {"fine_tune": True, "fine_tune_epochs": 1}},
    }
    result = materialize(
        [*DATA_ASSETS, *TRAINING_ASSETS, *EVALUATION_ASSETS], resources=resources(home), run_config={"ops": config}
    )
    assert result.success
    uri = f"sqlite:///{home / 'mlflow.db'}"
    return home, result, mlflow.MlflowClient(uri, registry_uri=uri)


def scores_of(client, version):
    return float(client.get_model_version("agenet", version).tags["champion_gate.score"])


def test_the_report_is_in_the_dagster_metadata_and_in_the_mlflow_run(first_run):
    _, result, client = first_run
    shown = metadata(result, "age_model_evaluation")
    report = shown["report"]
    assert report.count("data:image/png;base64,") == 3 and "Table 4" in report and "constant guess" in report
    assert "By gender" in report and "By race" in report
    assert 0 < shown["test MAE (years)"] and 0 <= shown["test exact accuracy, constant guess"] <= 1
    run = client.get_run(shown["mlflow run id"])
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/report.md", "evaluation/confusion_matrix.png", "evaluation/feature_maps.png"} <= logged
    card = shown["model card"]
    assert card.startswith("# Model card: agenet version ") and "`data.synthetic`: **true**" in card
    assert "## Use" in card and "evaluation/model_card.md" in logged
    headline = run.data.tags["model_card.headline"]
    assert headline in card and "synthetic demo faces" in headline
    # the evaluation scores the same test files as training did, so the two agree
    assert run.data.metrics["eval_test_aggregated_mae"] == pytest.approx(run.data.metrics["test_mae_years"])
    assert "eval_train_aggregated_exact" in run.data.metrics and "eval_test_ece" in run.data.metrics


def test_the_adience_protocol_scores_every_fold_as_trained_and_fine_tuned(first_run):
    _, result, client = first_run
    shown = metadata(result, "adience_benchmark")
    assert shown["folds scored"] == 5
    assert "## The model as trained" in shown["report"] and "## Fine-tuned on the other four folds" in shown["report"]
    run_id = metadata(result, "age_model_evaluation")["mlflow run id"]
    metrics = client.get_run(run_id).data.metrics
    assert {"adience_as_trained_bin_mass_exact_mean", "adience_fine_tuned_expected_age_one_off_mean"} <= set(metrics)
    assert "adience_benchmark/adience.md" in {a.path for a in client.list_artifacts(run_id, "adience_benchmark")}


def test_the_first_version_becomes_champion(first_run):
    _, result, client = first_run
    assert metadata(result, "champion_gate")["decision"] == CHAMPION
    assert str(client.get_registered_model("agenet").aliases[CHAMPION]) == "1"


def test_a_second_training_takes_champion_only_by_beating_the_first(first_run):
    home, _, client = first_run
    second = materialize(
        [age_model, *EVALUATION_ASSETS],
        resources=resources(home),
        run_config={"ops": {"age_model": {"config": TINY | {"max_epochs": 1}}}},
    )
    assert second.success
    decision = metadata(second, "champion_gate")
    first_mae, second_mae = scores_of(client, "1"), scores_of(client, "2")
    assert decision["model version"] == "2" and decision["champion version before"] == "1"
    # the tags keep six significant digits
    assert decision["champion score"] == pytest.approx(first_mae, rel=1e-5)
    assert decision["score"] == pytest.approx(second_mae, rel=1e-5)
    aliases = {alias: str(v) for alias, v in client.get_registered_model("agenet").aliases.items()}
    if second_mae < first_mae:
        assert decision["decision"] == CHAMPION and aliases == {CHAMPION: "2"}
    else:
        assert decision["decision"] == CHALLENGER and aliases == {CHAMPION: "1", CHALLENGER: "2"}
    run = client.get_run(client.get_model_version("agenet", "2").run_id)
    assert run.data.tags["champion_gate.decision"] == decision["decision"]
    assert run.data.tags["champion_gate.champion_version"] == "1"
