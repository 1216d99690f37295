"""The reports a person reads, in markdown: one per model, and one for the Adience benchmark.

Images are written by a link function, so that the same text serves a file beside its PNGs (MLflow
artifacts) and the Dagster UI (images inline as base64).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import polars as pl

from agenet_pipeline.core.ages import SEED_BINS, AgeBins
from agenet_pipeline.core.datasets import DATASETS
from agenet_pipeline.core.markdown import inline_png, table
from agenet_pipeline.datasets.splits import EVALUATION
from agenet_pipeline.evaluation.adience import GUESS_LABEL, Benchmark
from agenet_pipeline.evaluation.scores import AGGREGATED, Evaluation, GroupScores

METRIC_NAMES = {"exact": "Exact bin accuracy", "one_off": "One-off accuracy", "mae": "MAE (years)"}
GAP_NAMES = {"mae": "MAE", "exact": "exact accuracy"}
SPLIT_TITLES = {"train": "train", "test": "test", EVALUATION: "other source"}
DATASET_TITLES = {AGGREGATED: "aggregated", **{d.name: d.title for d in DATASETS.values()}}
ImageLink = Callable[[str, str], str]  # (PNG file name, title) -> markdown


def linked_files(name: str, title: str) -> str:
    return f"![{title}]({name})"


def inline(images: Mapping[str, bytes]) -> ImageLink:
    def link(name: str, title: str) -> str:
        return inline_png(images[name], title)

    return link


def _facts(facts: Mapping[str, str]) -> str:
    return "".join(f"- **{key}**: {value}\n" for key, value in facts.items())


def score_table(scores: pl.DataFrame, metric: str) -> pl.DataFrame:
    """The paper's Table 4 for one metric: a row per dataset, train and test columns (and `other source` for
    datasets never trained on), each beside the guess."""
    splits = [s for s in SPLIT_TITLES if s in scores["split"].to_list()]
    datasets = [d for d in DATASET_TITLES if d in scores["dataset"].to_list()]
    columns: dict[str, list] = {"dataset": [DATASET_TITLES[d] for d in datasets]}
    for split in splits:
        part = {r["dataset"]: r for r in scores.filter(pl.col("split") == split).iter_rows(named=True)}
        title = SPLIT_TITLES[split]
        columns[title] = [part[d][metric] if d in part else None for d in datasets]
        columns[f"{title} (constant guess)"] = [part[d][f"guess_{metric}"] if d in part else None for d in datasets]
        columns[f"{title} examples"] = [part[d]["examples"] if d in part else None for d in datasets]
    return pl.DataFrame(columns, strict=False)


def age_table(by_age: pl.DataFrame) -> pl.DataFrame:
    """MAE per age group: a row per group, a column per split and dataset, each beside the guess."""
    groups = by_age["ages"].unique(maintain_order=True).to_list()
    columns: dict[str, list] = {"ages": groups}
    for (split, dataset), part in by_age.partition_by("split", "dataset", as_dict=True, maintain_order=True).items():
        rows = {r["ages"]: r for r in part.iter_rows(named=True)}
        title = f"{SPLIT_TITLES[split]}, {DATASET_TITLES[dataset]}"
        columns[f"{title}: MAE"] = [rows[g]["mae"] if g in rows else None for g in groups]
        columns[f"{title}: constant guess"] = [rows[g]["guess_mae"] if g in rows else None for g in groups]
        columns[f"{title}: examples"] = [rows[g]["examples"] if g in rows else None for g in groups]
    return pl.DataFrame(columns, strict=False)


def _groups(groups: GroupScores) -> str:
    shown = groups.table.select(
        pl.col("group").alias(groups.attribute),
        "examples",
        pl.col("mae").alias("MAE"),
        pl.col("guess_mae").alias("MAE (guess)"),
        "exact",
        pl.col("guess_exact").alias("exact (guess)"),
    )
    lines = [table(shown)]
    for gap in groups.gaps:
        unit = " years" if gap.metric == "mae" else ""
        lines.append(
            f"\nLargest {GAP_NAMES[gap.metric]} gap by {groups.attribute}: **{gap.gap:.3f}{unit}** "
            f"(best: {gap.best}, worst: {gap.worst}).\n"
        )
    if not groups.gaps:
        lines.append(f"\nFewer than two known {groups.attribute} groups in the test split: no gap to state.\n")
    return "".join(lines)


def evaluation_report(
    title: str, facts: Mapping[str, str], evaluation: Evaluation, image: ImageLink, bins: AgeBins = SEED_BINS
) -> str:
    guess = evaluation.guess
    parts = [
        f"# {title}\n\n",
        _facts(facts),
        (
            "\nEvery score stands beside the **constant guess**, the best constant answer learned from the training "
            f"ages: for bin accuracy always the most frequent training bin ({bins.labels[guess.bin]}), for MAE always "
            f"the median training age ({guess.age:g} years). The model's MAE is of the age it answers from the mean "
            "of its outputs for the face and the face's mirror image: over the paper's ten bins, the expected age "
            "(their midpoints weighted by the predicted probabilities), and its bin the most probable; over years, "
            "the median age, and its bin that of the median year.\n"
        ),
        "\n## Scores per dataset (the paper's Table 4)\n",
    ]
    for metric, name in METRIC_NAMES.items():
        parts.append(f"\n### {name}\n\n{table(score_table(evaluation.scores, metric))}")
    if not evaluation.by_age.is_empty():
        parts.append(
            "\n## MAE by age group\n\nChildren (0-12) and the old (60+), where age estimators fail most, then "
            f"each bin.\n\n{table(age_table(evaluation.by_age))}"
        )
    parts.append("\n## Confusion matrix, test split (the paper's Figure 8)\n\n")
    parts.append(image("confusion_matrix.png", "confusion matrix") + "\n")
    parts.append("\n## Precision and recall per bin, test split\n\n" + table(evaluation.per_bin))
    parts.append(
        f"\n## Calibration, test split\n\nExpected calibration error **{evaluation.calibration.ece:.3f}** "
        f"(constant guess, always fully confident: {evaluation.guess_calibration.ece:.3f}).\n\n"
        + image("reliability.png", "reliability diagram")
        + "\n\n"
        + table(evaluation.calibration.table)
    )
    if evaluation.groups:
        parts.append("\n## UTKFace test split by gender and race\n")
        for groups in evaluation.groups:
            parts.append(f"\n### By {groups.attribute}\n\n{_groups(groups)}")
    parts.append("\n## Feature maps of a test face (the paper's Figure 7)\n\n")
    parts.append(image("feature_maps.png", "feature maps") + "\n")
    return "".join(parts)


def _benchmark(benchmark: Benchmark) -> str:
    if benchmark.folds.is_empty():
        return "\nNo fold was scored.\n\n" + "".join(f"- {note}\n" for note in benchmark.notes)
    folds = benchmark.folds.sort("mapping", "fold").rename(
        {"guess_exact": "exact (guess)", "guess_one_off": "one-off (guess)", "one_off": "one-off"}
    )
    parts = [
        "\nPer fold:\n\n",
        table(folds),
        (
            "\nMean and standard deviation over the folds scored (`guess_`: the constant guess; no deviation from "
            "fewer than two folds):\n\n"
        ),
        table(benchmark.summary),
    ]
    if benchmark.notes:
        parts.append("\nNotes:\n\n" + "".join(f"- {note}\n" for note in benchmark.notes))
    return "".join(parts)


def adience_report(title: str, facts: Mapping[str, str], benchmarks: Mapping[str, Benchmark]) -> str:
    parts = [
        f"# {title}\n\n",
        _facts(facts),
        (
            "\nThe five official folds, each scored alone (subject-exclusive: no person is in two folds). "
            "`bin mass`: each of our bins gives its probability to the Adience bins its age range overlaps; "
            "`expected age`: the paper's mapping, the answered age (over years, the median year) binned by the "
            f"cut points 0, 4, 7, 14, 24, 36, 46, 57. The constant guess always answers {GUESS_LABEL}.\n"
        ),
    ]
    for name, benchmark in benchmarks.items():
        parts.append(f"\n## {name}\n{_benchmark(benchmark)}")
    return "".join(parts)
