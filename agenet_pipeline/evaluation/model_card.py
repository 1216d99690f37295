"""The model card of a registered version: what it was trained on, how well it does and on whom worse, and what it
is for. Written with the evaluation report, logged to the version's run (`evaluation/model_card.md`); its headline
is a tag of the run (`tracking.registry.CARD_HEADLINE_TAG`) that `agenet models` prints."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from agenet_pipeline.core.datasets import DATASETS
from agenet_pipeline.core.markdown import table
from agenet_pipeline.evaluation.report import GAP_NAMES, METRIC_NAMES, age_table, score_table
from agenet_pipeline.evaluation.scores import Evaluation

LICENCES = {
    "utkface": "UTKFace: non-commercial research purposes only",
    "imdb_wiki": "IMDB-WIKI: academic research purposes only",
    "appa_real": "APPA-REAL: see the ChaLearn LAP terms of the dataset",
    "adience": "Adience (evaluation only): see the dataset's terms of use",
    "fgnet": "FG-NET (evaluation only): see the dataset's terms of use",
    "labels_table": "a labels table of the user's own: its own terms",
}
USE = """## Use

**Intended use.** Estimating the age group of a face in a photo for research, demonstrations and aggregate
statistics (for example the age mix of consenting participants), where an error of several years costs nothing.

**Out of scope.** Any decision about a person's access to anything (a service, a product, a place, content,
employment, credit, benefits) on the basis of an estimated age; age verification; identifying or tracking people;
photos of people who did not consent to the use.

**Limitations.** The network sees one face crop: lighting, make-up, expression, pose and photo quality move its
estimate by years. Its errors are larger for the age groups and the genders and races that are rarer in its
training data (see the gaps above); ages outside the training sources' range are guessed from their neighbours. A
version trained on the synthetic demo faces says nothing about real people.
"""


def datasets_of(tags: Mapping[str, str]) -> dict[str, int]:
    """The training datasets with their rows, from the run's `data.datasets` tag (`utkface=1200,imdb_wiki=300`)."""
    pairs = (item.split("=") for item in tags.get("data.datasets", "").split(",") if "=" in item)
    return {name: int(rows) for name, rows in pairs}


def headline(version: str, tags: Mapping[str, str], evaluation: Evaluation) -> str:
    synthetic = tags.get("data.synthetic") == "true"
    data = ", ".join(DATASETS[d].title if d in DATASETS else d for d in datasets_of(tags)) or "unknown data"
    return (
        f"version {version}: test MAE {evaluation.test_score('mae'):.2f} years (constant guess "
        f"{evaluation.test_score('guess_mae'):.2f}), exact {evaluation.test_score('exact'):.3f} (guess "
        f"{evaluation.test_score('guess_exact'):.3f}); trained on {data}"
        + (" (synthetic demo faces: not for real people)" if synthetic else "")
    )


def _parameters(params: Mapping[str, str], prefix: str) -> pl.DataFrame:
    chosen = sorted((k.removeprefix(prefix), v) for k, v in params.items() if k.startswith(prefix))
    return pl.DataFrame(
        {"parameter": [k for k, _ in chosen], "value": [v for _, v in chosen]},
        schema=[("parameter", pl.String), ("value", pl.String)],
    )


def _data(params: Mapping[str, str], tags: Mapping[str, str]) -> str:
    rows = datasets_of(tags)
    datasets = pl.DataFrame(
        {"dataset": [DATASETS[d].title if d in DATASETS else d for d in rows], "rows": list(rows.values())},
        schema=[("dataset", pl.String), ("rows", pl.Int64)],
    )
    others = {k: v for k, v in params.items() if not k.startswith(("model.", "training.", "faces."))}
    return (
        "## Data\n\n"
        f"Training datasets (`data.synthetic`: **{tags.get('data.synthetic', 'unknown')}**):\n\n{table(datasets)}"
        f"\n### Face settings (the crops it was trained on)\n\n{table(_parameters(params, 'faces.'))}"
        f"\n### Recipe: the network\n\n{table(_parameters(params, 'model.'))}"
        f"\n### Recipe: training\n\n{table(_parameters(params, 'training.'))}"
        f"\n### Other parameters of the run\n\n{table(_parameters(others, ''))}"
    )


def _scores(evaluation: Evaluation) -> str:
    parts = ["## Scores\n\nEach beside the constant guess (the most frequent training bin; the median training age).\n"]
    for metric, name in METRIC_NAMES.items():
        parts.append(f"\n### {name} per dataset\n\n{table(score_table(evaluation.scores, metric))}")
    parts.append(f"\n### Per bin, test split\n\n{table(evaluation.per_bin)}")
    parts.append(
        f"\n### Calibration\n\nExpected calibration error {evaluation.calibration.ece:.3f} (constant guess "
        f"{evaluation.guess_calibration.ece:.3f}).\n"
    )
    gaps = [
        f"- {GAP_NAMES[gap.metric]} by {groups.attribute}: {gap.gap:.3f} (best {gap.best}, worst {gap.worst})\n"
        for groups in evaluation.groups
        for gap in groups.gaps
    ]
    parts.append(
        "\n### Fairness gaps (UTKFace test split)\n\n" + ("".join(gaps) or "No two known groups to compare.\n")
    )
    parts.append(_cross_source(evaluation))
    if not evaluation.by_age.is_empty():
        parts.append(f"\n### MAE by age group\n\n{table(age_table(evaluation.by_age))}")
    return "".join(parts)


def _cross_source(evaluation: Evaluation) -> str:
    """The scores on photos of another source (FG-NET), never trained on."""
    scored = evaluation.other_source_scores()
    if scored.is_empty():
        return "\n### Cross-source (FG-NET)\n\nNot configured for this run: no score on photos of another source.\n"
    lines = [
        f"- {DATASETS[row['dataset']].title}, {row['examples']} photos: MAE {row['mae']:.2f} years (constant guess "
        f"{row['guess_mae']:.2f}), exact {row['exact']:.3f} ({row['guess_exact']:.3f}), one-off "
        f"{row['one_off']:.3f} ({row['guess_one_off']:.3f})\n"
        for row in scored.iter_rows(named=True)
    ]
    return "\n### Cross-source (never trained on)\n\n" + "".join(lines)


def _licences(tags: Mapping[str, str]) -> str:
    used = [LICENCES.get(d, f"{d}: see the dataset's terms") for d in datasets_of(tags)]
    return "\n**Licences of the training data.** " + ("; ".join(used) or "unknown") + ".\n"


def model_card(
    name: str,
    version: str,
    params: Mapping[str, str],
    tags: Mapping[str, str],
    evaluation: Evaluation,
) -> str:
    """The card in markdown; its first paragraph is the headline."""
    return (
        f"# Model card: {name} version {version}\n\n{headline(version, tags, evaluation)}\n\n"
        + _data(params, tags)
        + "\n"
        + _scores(evaluation)
        + "\n"
        + USE
        + _licences(tags)
    )
