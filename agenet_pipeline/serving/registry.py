"""The registered versions of a model: aliases and the headline test scores of the runs that made them."""

from __future__ import annotations

import datetime as dt

HEADLINE_METRICS = ("test_mae_years", "test_exact_accuracy")


def model_versions(name: str) -> list[dict[str, str]]:
    """One row per version of `name` in the current registry, newest first."""
    from mlflow import MlflowClient

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
                "run_id": version.run_id or "",
            }
        )
    return rows


def text_table(rows: list[dict[str, str]]) -> str:
    """Rows as aligned columns under a header."""
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(row[c]) for row in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(row[c].ljust(widths[c]) for c in columns) for row in rows]
    return "\n".join(line.rstrip() for line in lines)
