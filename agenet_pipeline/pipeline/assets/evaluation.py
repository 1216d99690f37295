"""Evaluation assets: the age model's report, the Adience benchmark, and the gate to the `champion` alias.

Each reads the record the age_model asset leaves (its MLflow run, registered version and Keras file), adds its
report to that run and shows it in the Dagster UI. TensorFlow, Keras and MLflow are imported inside the assets:
every Dagster step process imports this module.
"""

import polars as pl
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field

from agenet_pipeline.core.datasets import DATASETS
from agenet_pipeline.pipeline.assets.metadata import markdown_table
from agenet_pipeline.pipeline.assets.training import ON_THE_GPU, age_model
from agenet_pipeline.pipeline.resources import AgeNetHome, MLflowResource

GROUP = "evaluation"


class EvaluationConfig(Config):
    include_train: bool = Field(
        default=True,
        description="Score the training split too (the paper's Table 4 has train and test columns); "
        "off saves a pass over the training data",
    )
    calibration_intervals: int = Field(default=10, description="Confidence intervals of the calibration (ECE)")
    feature_maps_per_layer: int = Field(default=6, description="Feature maps shown per conv layer")


def _float(value: float | None) -> MetadataValue:
    return MetadataValue.float(float("nan") if value is None else value)


def _cross_source(evaluation) -> dict[str, MetadataValue]:
    """The scores on each dataset of another source (FG-NET), never trained on."""
    metadata = {}
    for row in evaluation.other_source_scores().iter_rows(named=True):
        title = DATASETS[row["dataset"]].title
        metadata[f"{title} (other source) MAE (years)"] = _float(row["mae"])
        metadata[f"{title} (other source) MAE, constant guess"] = _float(row["guess_mae"])
        metadata[f"{title} (other source) exact accuracy"] = _float(row["exact"])
        metadata[f"{title} (other source) one-off accuracy"] = _float(row["one_off"])
        metadata[f"{title} (other source) examples"] = row["examples"]
    return metadata


# Steps that load a model share the training steps' pool, so that two never hold one GPU's memory at once.
@asset(group_name=GROUP, deps=[age_model], kinds={"tensorflow", "mlflow"}, **ON_THE_GPU)
def age_model_evaluation(
    context: AssetExecutionContext, config: EvaluationConfig, home: AgeNetHome
) -> MaterializeResult:
    """The age model on the fixed test split (and its training split): scores per dataset beside a constant
    guess, confusion matrix, precision and recall per bin, calibration, UTKFace gaps by gender and race,
    feature maps; a markdown report, also added to the model's MLflow run."""
    from agenet_pipeline.evaluation.model_report import EvaluationSettings, evaluate_model
    from agenet_pipeline.evaluation.report import GAP_NAMES

    result = evaluate_model(home.folder, EvaluationSettings(**config.model_dump()))
    if result.warning:
        context.log.warning(result.warning)
    context.log.info(f"report added to MLflow run {result.record.run_id} under evaluation/")
    evaluation = result.evaluation
    gaps = {
        f"UTKFace largest {GAP_NAMES[gap.metric]} gap by {groups.attribute}": MetadataValue.float(gap.gap)
        for groups in evaluation.groups
        for gap in groups.gaps
    }
    return MaterializeResult(
        metadata={
            "report": MetadataValue.md(result.text(images_inline=True)),
            "model card": MetadataValue.md(result.card),
            "test MAE (years)": evaluation.test_score("mae"),
            "test MAE, constant guess": evaluation.test_score("guess_mae"),
            "test exact accuracy": evaluation.test_score("exact"),
            "test exact accuracy, constant guess": evaluation.test_score("guess_exact"),
            "test one-off accuracy": evaluation.test_score("one_off"),
            "test one-off accuracy, constant guess": evaluation.test_score("guess_one_off"),
            "test expected calibration error": evaluation.calibration.ece,
            **gaps,
            **_cross_source(evaluation),
            "test examples": int((result.predictions.keys["split"] == "test").sum()),
            "model version": str(result.record.version),
            "mlflow run id": result.record.run_id,
            "report file": MetadataValue.path(str(result.report_path)),
            "report folder (figures, predictions)": MetadataValue.path(str(result.folder)),
        }
    )


class AdienceConfig(Config):
    fine_tune: bool = Field(
        default=False, description="Also fine-tune on four folds and test on the fifth, each fold in turn"
    )
    fine_tune_epochs: int = Field(default=2, description="Epochs of fine-tuning per fold")
    fine_tune_learning_rate: float = Field(default=1e-4, description="Adam learning rate of the fine-tuning")
    batch_size: int = Field(default=32, description="Batch size of the fine-tuning")


@asset(group_name=GROUP, deps=[age_model], kinds={"tensorflow", "mlflow"}, **ON_THE_GPU)
def adience_benchmark(context: AssetExecutionContext, config: AdienceConfig, home: AgeNetHome) -> MaterializeResult:
    """The standard Adience protocol over its five subject-exclusive folds: exact and one-off accuracy per
    fold, their mean and spread, beside always guessing 25-32; optionally fine-tuned on the other folds."""
    from agenet_pipeline.evaluation.adience_run import VARIANT_TITLES, run_adience_benchmark
    from agenet_pipeline.evaluation.finetune import FineTuning

    fine_tuning = (
        FineTuning(config.fine_tune_epochs, config.fine_tune_learning_rate, config.batch_size)
        if config.fine_tune
        else None
    )
    run = run_adience_benchmark(home.folder, fine_tuning)
    if run is None:
        skipped = "no Adience faces to score (Adience is not configured, or none of its faces was usable)"
        context.log.info(skipped)
        return MaterializeResult(metadata={"skipped": skipped})
    for variant, result in run.variants.items():
        for note in result.notes:
            context.log.info(f"Adience, {VARIANT_TITLES[variant].lower()}: {note}")
    as_trained = run.as_trained
    return MaterializeResult(
        metadata={
            "report": MetadataValue.md(run.text),
            "folds scored": as_trained.folds["fold"].n_unique(),
            "notes": MetadataValue.md("".join(f"- {n}\n" for n in as_trained.notes) or "none"),
            "exact accuracy, mean over folds (bin mass)": _float(as_trained.mean("bin mass", "exact")),
            "one-off accuracy, mean over folds (bin mass)": _float(as_trained.mean("bin mass", "one_off")),
            "exact accuracy, mean over folds (expected age)": _float(as_trained.mean("expected age", "exact")),
            "exact accuracy, constant guess 25-32": _float(as_trained.mean("bin mass", "guess_exact")),
            "one-off accuracy, constant guess 25-32": _float(as_trained.mean("bin mass", "guess_one_off")),
            "per fold": markdown_table(as_trained.folds),
            "report file": MetadataValue.path(str(run.report_path)),
        }
    )


class ChampionConfig(Config):
    metric: str = Field(
        default="mae",
        description="Test score that decides: 'mae' (lower is better), 'exact' or 'one_off' (higher is better)",
    )


@asset(group_name=GROUP, deps=[age_model_evaluation], kinds={"mlflow"})
def champion_gate(
    context: AssetExecutionContext, config: ChampionConfig, home: AgeNetHome, mlflow: MLflowResource
) -> MaterializeResult:
    """The new version becomes `champion` only when it beats the champion on the same test split; else
    `challenger`. The decision, with both scores, is recorded on the version and its MLflow run."""
    from agenet_pipeline.evaluation.model_report import gate_age_model

    decision = gate_age_model(home.folder, mlflow.registered_model, config.metric)
    context.log.info(f"version {decision.version} is {decision.alias}: {decision.reason}")
    table = pl.DataFrame(
        {
            "": [f"version {decision.version} (this one)", f"champion before: {decision.champion_version or 'none'}"],
            decision.metric: [decision.score, decision.champion_score],
        },
        strict=False,
    )
    return MaterializeResult(
        metadata={
            "decision": decision.alias,
            "reason": decision.reason,
            "scores": markdown_table(table),
            "metric": decision.metric,
            "model version": decision.version,
            "score": decision.score,
            "champion version before": decision.champion_version or "none",
            "champion score": _float(decision.champion_score),
            "champion scored": decision.champion_scored or "-",
            "test split": decision.test_split,
            "model uri": MetadataValue.text(f"models:/{mlflow.registered_model}@{decision.alias}"),
        }
    )
