"""Quality on real faces as users are judged: each recipe trained by the Dagster `full_job` itself, at the settings
of configs/utkface.yaml, and scored on UTKFace part 1's test split and on FG-NET (another source, never trained on).

    .venv/bin/python benchmarks/quality.py                                  # soft_bins and recommended, seeds 0, 1
    .venv/bin/python benchmarks/quality.py --recipes recommended --seeds 0 1 2
    .venv/bin/python benchmarks/quality.py --try "sigma3: recipe=recommended label_sigma=3"
    .venv/bin/python benchmarks/quality.py --set max_epochs=30             # a setting changed for every run
    .venv/bin/python benchmarks/quality.py --try "whole margin: recipe=recommended faces.context=null"
    .venv/bin/python benchmarks/quality.py --rescore                       # after a change to the scoring

Each run is `dagster job execute -m agenet_pipeline -j full_job -c <config>` in a project folder of its own under
`--work` (its home, Dagster instance and MLflow store inside it), with $AGENET_UTKFACE and $AGENET_FGNET set and
nothing else: the user's command, with the run config `--config` (configs/utkface.yaml) plus `recipe`, `seed` and
the `--set` / `--try` settings on `age_model` (those named `faces.<setting>` on the face stage of both sources).
Every score is read from what the job wrote: the MLflow metrics of the registered version's run
(`eval_test_aggregated_*`, `eval_evaluation_fgnet_*`, each beside its `_constant_guess`: the median training age for
MAE, the most frequent training bin for accuracy) and the evaluation's `predictions.parquet` for the MAE by age bin.
So a `full_job` run with the same config and seed gives the same scores: the benchmark measures the product, not a
copy of it. Training time is the age_model run's wall time in MLflow.

Finished runs are kept as JSON lines in `<work>/quality-runs.jsonl`, each with the whole run config it trained
with, and a run whose config is already there is not trained again (delete the line, or use another `--work`, to
redo it): the whole comparison takes hours on two cores, and can be stopped and started again. A default changed in
the code is not in the run config: after one, name the old value in a candidate or use another `--work`. A change to
how a trained model is scored, not trained, needs no new training: `--rescore` materialises `age_model_evaluation`
again in each run's project, as a user would in the Dagster UI, and records the scores it gives.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import yaml

from agenet_pipeline.core.files import write_bytes

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parent
SHARED = REPOSITORY.parent / "shared" / "data"
SOURCES = {"utkface": ("test", "aggregated", "UTKFace part 1, test split"), "fgnet": ("evaluation", "fgnet", "FG-NET")}
HEADLINE_GROUPS = {"0_12": "MAE 0-12", "60_plus": "MAE 60+"}
FACES = "faces."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--recipes", nargs="*", default=["soft_bins", "recommended"], help="recipe names (the paper's: seed)"
    )
    parser.add_argument(
        "--try",
        dest="tries",
        action="append",
        default=[],
        metavar="'NAME: key=value ...'",
        help="a candidate: age_model settings (recipe=..., any field of its config); may be repeated",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds of each candidate")
    parser.add_argument("--set", dest="settings", nargs="*", default=[], metavar="key=value", help="for every run")
    parser.add_argument("--config", type=Path, default=REPOSITORY / "configs" / "utkface.yaml", help="run config")
    parser.add_argument("--utkface", type=Path, default=SHARED / "utkface_part1", help="UTKFace root")
    parser.add_argument("--fgnet", type=Path, default=SHARED / "fgnet" / "images", help="FG-NET root")
    parser.add_argument("--work", type=Path, default=Path("/tmp/agenet-quality"), help="project folders of the runs")
    parser.add_argument(
        "--rescore", action="store_true", help="evaluate the recorded runs' models again and record the new scores"
    )
    return parser.parse_args(argv)


def _settings(items: list[str]) -> dict:
    """`key=value` items, each value a YAML scalar or list: `2`, `1e-3`, `true`, `[32, 64]`."""
    return {key: yaml.safe_load(text) for key, text in (item.split("=", 1) for item in items)}


def candidates(args: argparse.Namespace) -> dict[str, dict]:
    """Name -> the age_model settings it changes."""
    found = {name: {"recipe": name} for name in args.recipes}
    for spec in args.tries:
        name, _, settings = spec.partition(":")
        found[name.strip()] = _settings(shlex.split(settings))
    shared = _settings(args.settings)
    return {name: {**shared, **settings} for name, settings in found.items()}


def run_config(base: Path, settings: dict, seed: int) -> dict:
    """The config file with the candidate's settings: `faces.<key>` on the face stage of both sources, the others
    on `age_model`."""
    config = yaml.safe_load(base.read_text()) or {}
    ops = config.setdefault("ops", {})
    for key, value in settings.items():
        if key.startswith(FACES):
            for source in SOURCES:
                ops.setdefault(f"faces_{source}", {}).setdefault("config", {})[key.removeprefix(FACES)] = value
    age_model = ops.setdefault("age_model", {}).setdefault("config", {})
    age_model.update({k: v for k, v in settings.items() if not k.startswith(FACES)} | {"seed": seed})
    return config


def run_job(project: Path, config: dict, utkface: Path, fgnet: Path) -> float:
    """full_job in `project`, as a user runs it; the seconds it took."""
    project.mkdir(parents=True, exist_ok=True)
    (project / "dagster.yaml").write_text((REPOSITORY / "dagster.yaml").read_text())
    (project / "run.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    started = time.perf_counter()
    arguments = ["job", "execute", "-m", "agenet_pipeline", "-j", "full_job", "-c", "run.yaml"]
    dagster(project, arguments, sources(utkface, fgnet), project / "job.log")
    return time.perf_counter() - started


def evaluate_again(project: Path, utkface: Path, fgnet: Path) -> None:
    """The age model's evaluation materialised again in `project`, with the code as it is now."""
    arguments = ["asset", "materialize", "-m", "agenet_pipeline", "--select", "age_model_evaluation"]
    dagster(project, arguments, sources(utkface, fgnet), project / "rescore.log")


def sources(utkface: Path, fgnet: Path) -> dict[str, str]:
    return {"AGENET_UTKFACE": str(utkface), "AGENET_FGNET": str(fgnet)}


def dagster(project: Path, arguments: list[str], variables: dict[str, str], log_path: Path) -> None:
    """The dagster command in `project` (its Dagster instance and, unless `variables` set AGENET_HOME, its home),
    with only the AGENET_ variables of `variables` (none: the demo data), its output in `log_path`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENET_", "MLFLOW_"))}
    env |= variables | {"DAGSTER_HOME": str(project)}
    with open(log_path, "w") as log:
        command = [str(Path(sys.executable).parent / "dagster"), *arguments]
        completed = subprocess.run(command, cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT)
    if completed.returncode:
        raise SystemExit(f"dagster {arguments[0]} failed in {project} (exit {completed.returncode}): see {log_path}")


def scores_of(project: Path) -> dict:
    """What the job recorded: the registered version's metrics and its training time, and MAE per age bin."""
    import mlflow

    home = project / ".agenet"
    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    [version] = client.search_model_versions("name='agenet'")
    run = client.get_run(version.run_id)
    predictions = pl.read_parquet(home / "evaluation" / "age_model" / "report" / "predictions.parquet")
    by_bin = (
        predictions.filter(pl.col("split").is_in(["test", "evaluation"]))
        .with_columns((pl.col("predicted_age") - pl.col("age")).abs().alias("error"))
        .group_by("split", "bin")
        .agg(pl.len().alias("examples"), pl.col("error").mean().alias("mae"))
    )
    return {
        "metrics": dict(run.data.metrics),
        "training_minutes": (run.info.end_time - run.info.start_time) / 60_000,
        "by_bin": by_bin.to_dicts(),
    }


def metric(run: dict, source: str, name: str) -> float | None:
    split, dataset, _ = SOURCES[source]
    return run["metrics"].get(f"eval_{split}_{dataset}_{name}")


def spread(values: list[float], digits: int) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values)
    if min(values) == max(values):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({min(values):.{digits}f}..{max(values):.{digits}f})"


def _cells(runs: list[dict], source: str, suffix: str) -> list[str]:
    """MAE (overall, 0-12, 60+), exact and one-off of `runs` on `source` (`suffix`: '_constant_guess' for the
    guess's), each as mean (min..max) over the runs."""
    metrics = (("mae", 2), *((f"mae_{group}", 2) for group in HEADLINE_GROUPS), ("exact", 3), ("one_off", 3))
    return [
        spread([v for r in runs if (v := metric(r, source, f"{key}{suffix}")) is not None], digits)
        for key, digits in metrics
    ]


def print_tables(runs: list[dict]) -> None:
    names = list(dict.fromkeys(r["name"] for r in runs))
    print("\n## MAE in years first, then exact and one-off bin accuracy: mean over seeds (min..max)\n")
    columns = ["MAE", *HEADLINE_GROUPS.values(), "exact", "one-off"]
    print(f"| candidate | seeds | training (min) | test set | {' | '.join(columns)} |")
    print("| --- | --- | ---: | --- |" + " ---: |" * len(columns))
    for name in names:
        mine = [r for r in runs if r["name"] == name]
        seeds = ", ".join(str(r["seed"]) for r in mine)
        minutes = spread([r["training_minutes"] for r in mine], 1)
        for source, (_, _, title) in SOURCES.items():
            print(f"| {name} | {seeds} | {minutes} | {title} | {' | '.join(_cells(mine, source, ''))} |")
    print("\n## The constant guess (learned from the training split), the floor each score must beat\n")
    print(f"| test set | {' | '.join(columns)} |")
    print("| --- |" + " ---: |" * len(columns))
    for source, (_, _, title) in SOURCES.items():
        print(f"| {title} | {' | '.join(_cells(runs, source, '_constant_guess'))} |")
    print("\n## MAE by age bin (years), mean over seeds; examples in brackets\n")
    from agenet_pipeline.core.ages import SEED_BINS

    print(f"| test set | candidate | {' | '.join(SEED_BINS.labels)} |")
    print("| --- | --- |" + " ---: |" * len(SEED_BINS))
    for source, (split, _, title) in SOURCES.items():
        for name in names:
            cells = []
            for index in range(len(SEED_BINS)):
                rows = [
                    b
                    for r in runs
                    if r["name"] == name
                    for b in r["by_bin"]
                    if (b["split"], b["bin"]) == (split, index)
                ]
                cells.append(f"{statistics.fmean(b['mae'] for b in rows):.1f} ({rows[0]['examples']})" if rows else "-")
            print(f"| {title} | {name} | {' | '.join(cells)} |")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    for root in (args.utkface, args.fgnet):
        if not root.is_dir():
            print(f"note: {root} is missing: this benchmark needs the real UTKFace and FG-NET photos; nothing run")
            return
    args.work.mkdir(parents=True, exist_ok=True)
    log = args.work / "quality-runs.jsonl"
    done = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    runs, rescored = [], set()
    for name, settings in candidates(args).items():
        for seed in args.seeds:
            config = run_config(args.config, settings, seed)
            # A run is known by the whole run config it trained with (the config file's content, the candidate's
            # settings, the seed), whatever its name: the same config is the same job.
            found = next((r for r in done if r.get("run_config") == config), None)
            if found is None:
                digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
                project = args.work / f"{name}-seed{seed}-{digest}"  # never another run's project
                print(f"{name}, seed {seed}: full_job in {project} ...", flush=True)
                seconds = run_job(project, config, args.utkface, args.fgnet)
                found = {"run_config": config, "project": project.name, "job_seconds": seconds, **scores_of(project)}
                with open(log, "a") as out:
                    out.write(json.dumps(found) + "\n")
            elif args.rescore and id(found) not in rescored:
                project = args.work / found["project"]
                print(f"{name}, seed {seed}: age_model_evaluation again in {project} ...", flush=True)
                evaluate_again(project, args.utkface, args.fgnet)
                found.update(scores_of(project))
                rescored.add(id(found))
                write_bytes(log, "".join(json.dumps(r) + "\n" for r in done))
            found = {**found, "name": name, "seed": seed, "settings": settings}
            runs.append(found)
    print(f"\n{len(runs)} runs of full_job with {args.config} (UTKFace {args.utkface}, FG-NET {args.fgnet})")
    for run in runs:
        print(f"- {run['name']}, seed {run['seed']}: {run['settings']}, whole job {run['job_seconds'] / 60:.0f} min")
    print_tables(runs)


if __name__ == "__main__":
    main()
