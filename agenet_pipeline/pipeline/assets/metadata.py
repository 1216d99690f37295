"""Metadata values shared by the assets: counts as markdown tables, histograms, images."""

from pathlib import Path

import polars as pl
from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue

from agenet_pipeline.core import markdown
from agenet_pipeline.core.ages import SEED_BINS
from agenet_pipeline.core.files import write_bytes


def markdown_table(frame: pl.DataFrame) -> MetadataValue:
    return MetadataValue.md(markdown.table(frame))


def reconciliation_result(result, table_name: str) -> AssetCheckResult:
    """A `rows_reconcile` check's outcome: the equation with its numbers, the table behind it, any problems."""
    return AssetCheckResult(
        passed=result.passed,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "rows": MetadataValue.text(result.statement),
            table_name: markdown_table(result.table),
            "problems": MetadataValue.text("; ".join(result.problems) or "none"),
        },
    )


def counts_by(frame: pl.DataFrame, *columns: str) -> pl.DataFrame:
    return frame.group_by(columns).len("rows").sort(columns)


def status_counts(frame: pl.DataFrame) -> dict[str, int]:
    return dict(counts_by(frame, "status").iter_rows())


def age_histogram(ages: pl.Series) -> MetadataValue:
    """Rows per seed age bin, as a markdown table with a text bar."""
    ages = ages.drop_nulls().to_numpy()
    counts = [0] * len(SEED_BINS)
    if len(ages):
        for index in SEED_BINS.index(ages):
            counts[index] += 1
    widest = max(max(counts), 1)
    rows = [(label, n, "#" * round(30 * n / widest)) for label, n in zip(SEED_BINS.labels, counts)]
    return markdown_table(pl.DataFrame(rows, schema=["age bin", "rows", ""], orient="row"))


def png_metadata(png: bytes, path: Path, title: str) -> dict[str, MetadataValue]:
    """An image shown in the Dagster UI (inline markdown) and kept on disk beside the asset."""
    write_bytes(path, png)
    return {
        title: MetadataValue.md(markdown.inline_png(png, title)),
        f"{title} file": MetadataValue.path(str(path)),
    }
