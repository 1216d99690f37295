"""The champion gate: a new model version takes the `champion` alias only by beating the champion in office.

Both are scored on the same test split. The split is named by the content hash of each dataset's test rows
(what training runs record as `data.test.<dataset>.hash`); when the champion's run was tested on another
split, the champion is re-scored on the current one before the comparison. A version that does not beat the
champion (a tie does not) becomes `challenger`. The decision, with both scores, goes into the version's tags
and its run's tags.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from agenet_pipeline.model.batch_prediction import predict_sets
from agenet_pipeline.model.metrics import score
from agenet_pipeline.tracking.registry import keras_model_of_run

CHAMPION = "champion"
CHALLENGER = "challenger"
TAG_PREFIX = "champion_gate."


@dataclass(frozen=True)
class GateMetric:
    name: str
    run_metric: str  # the test score a training run logs
    lower_is_better: bool

    def beats(self, score: float, other: float) -> bool:
        return score < other if self.lower_is_better else score > other


GATE_METRICS = {
    "mae": GateMetric("mae", "test_mae_years", lower_is_better=True),
    "exact": GateMetric("exact", "test_exact_accuracy", lower_is_better=False),
    "one_off": GateMetric("one_off", "test_one_off_accuracy", lower_is_better=False),
}


def gate_metric(name: str) -> GateMetric:
    if name not in GATE_METRICS:
        raise ValueError(f"the champion metric must be one of {', '.join(GATE_METRICS)}, not {name!r}")
    return GATE_METRICS[name]


def split_name(test_hashes: Mapping[str, str]) -> str:
    """One string for a test split: `dataset=hash` per dataset, sorted."""
    return ",".join(f"{dataset}={digest}" for dataset, digest in sorted(test_hashes.items()))


def split_of_run(params: Mapping[str, str]) -> dict[str, str]:
    """The test split a training run was scored on, from its `data.test.<dataset>.hash` parameters."""
    return {
        key.split(".")[2]: value
        for key, value in params.items()
        if key.startswith("data.test.") and key.endswith(".hash")
    }


def recorded_score(
    client: MlflowClient, run_id: str, metric: GateMetric, test_hashes: Mapping[str, str]
) -> float | None:
    """The score the run logged when it was tested on exactly `test_hashes`; None when it was tested on
    another split or logged no such score."""
    run = client.get_run(run_id)
    if split_of_run(run.data.params) != dict(test_hashes):
        return None
    return run.data.metrics.get(metric.run_metric)


def _alias(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version (as a string: the registry answers with numbers) that holds `alias`, if any."""
    version = client.get_registered_model(name).aliases.get(alias)
    return None if version is None else str(version)


@dataclass(frozen=True)
class GateDecision:
    version: str
    alias: str  # CHAMPION or CHALLENGER
    metric: str
    score: float
    champion_version: str | None  # the champion it was compared with
    champion_score: float | None
    champion_scored: str  # how the champion's score was found
    test_split: str
    reason: str

    def tags(self) -> dict[str, str]:
        values = {
            "decision": self.alias,
            "metric": self.metric,
            "score": f"{self.score:.6g}",
            "champion_version": self.champion_version or "",
            "champion_score": "" if self.champion_score is None else f"{self.champion_score:.6g}",
            "champion_scored": self.champion_scored,
            "test_split": self.test_split,
            "reason": self.reason,
        }
        return {TAG_PREFIX + key: value for key, value in values.items()}


@dataclass(frozen=True)
class Candidate:
    """A new version of registered model `name`, made by run `run_id`, scoring `score` on the split `test_hashes`."""

    name: str
    version: str
    run_id: str
    score: float
    test_hashes: Mapping[str, str]


def decide(
    client: MlflowClient, candidate: Candidate, metric: GateMetric, rescore: Callable[[ModelVersion], float]
) -> GateDecision:
    """Compare the candidate with the current champion. `rescore` scores a champion tested on another split on
    the candidate's."""
    name, version, score, test_hashes = candidate.name, candidate.version, candidate.score, candidate.test_hashes
    current = _alias(client, name, CHAMPION)
    decision = {
        "version": str(version),
        "metric": metric.name,
        "score": score,
        "test_split": split_name(test_hashes),
        "champion_version": current,
        "champion_score": None,
        "champion_scored": "",
    }
    if current is None:
        return GateDecision(**decision, alias=CHAMPION, reason="no champion yet: the first version becomes champion")
    if current == str(version):
        return GateDecision(**decision, alias=CHAMPION, reason="this version is already the champion")
    champion = client.get_model_version(name, current)
    champion_score = recorded_score(client, champion.run_id, metric, test_hashes)
    scored = "recorded by its training run on the same test split"
    if champion_score is None:
        champion_score, scored = rescore(champion), "re-scored on the current test split"
    wins = metric.beats(score, champion_score)
    verdict = "beats" if wins else "does not beat"
    better = "lower" if metric.lower_is_better else "higher"
    return GateDecision(
        **decision | {"champion_score": champion_score, "champion_scored": scored},
        alias=CHAMPION if wins else CHALLENGER,
        reason=f"{metric.name} {score:.4f} {verdict} champion version {current}'s {champion_score:.4f} "
        f"({better} is better)",
    )


def apply(client: MlflowClient, candidate: Candidate, decision: GateDecision) -> None:
    """Move the alias and record the decision on the model version and on its run."""
    challenger = _alias(client, candidate.name, CHALLENGER)
    client.set_registered_model_alias(candidate.name, decision.alias, decision.version)
    if decision.alias == CHAMPION and challenger == decision.version:
        client.delete_registered_model_alias(candidate.name, CHALLENGER)
    for key, value in decision.tags().items():
        client.set_model_version_tag(candidate.name, decision.version, key, value)
        client.set_tag(candidate.run_id, key, value)


def judge(
    client: MlflowClient, candidate: Candidate, metric: GateMetric, rescore: Callable[[ModelVersion], float]
) -> GateDecision:
    """Decide, then apply: the candidate takes `champion` or `challenger`, and the decision is recorded."""
    decision = decide(client, candidate, metric, rescore)
    apply(client, candidate, decision)
    return decision


def rescoring_on(
    client: MlflowClient, test_files: Sequence[str], metric: GateMetric
) -> Callable[[ModelVersion], float]:
    """A `rescore` that runs a champion's logged network over the TFRecord files of the current test split."""

    def rescore(champion: ModelVersion) -> float:
        network = keras_model_of_run(client, champion.run_id)
        predictions = predict_sets(network, {("test", "all"): list(test_files)})
        return getattr(score(predictions.probabilities, predictions.ages), metric.name)

    return rescore
