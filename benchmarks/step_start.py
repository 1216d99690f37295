"""How long a run spends starting its steps: `dagster job execute` of `data_job` on a small demo, as a user runs it,
with the executor's default (steps forked from a server that has imported the definitions) against Dagster's own
default (`start_method: spawn`, each step a fresh interpreter that imports them).

    .venv/bin/python benchmarks/step_start.py                  # 3 runs of each, 200 demo images a dataset
    .venv/bin/python benchmarks/step_start.py --runs 5 --demo-images 400

Each run is a new project folder (nothing reused), the two ways alternating. A run's seconds are its Dagster run
record's start to end; "in the steps" adds up the steps' own seconds (their step stats); the rest is starting them
and passing their results, with two steps at a time on two cores. Medians over `--runs`; the ratio is to spawn,
measured in the same run of this script.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
WAYS = {"forkserver (default)": None, "spawn": {"spawn": {}}}


def _run_config(demo_images: int, start_method: dict | None) -> str:
    config = f"resources:\n  dataset_roots:\n    config:\n      demo_images: {demo_images}\n"
    if start_method is not None:
        config += f"execution:\n  config:\n    start_method: {start_method}\n"
    return config


def _one_run(demo_images: int, start_method: dict | None) -> tuple[float, float, int]:
    """(run seconds, seconds inside the steps, steps) of one `data_job` run in a new project folder."""
    from dagster import DagsterInstance, RunsFilter

    with tempfile.TemporaryDirectory(prefix="step-start-") as folder:
        shutil.copy(REPOSITORY / "dagster.yaml", Path(folder) / "dagster.yaml")
        (Path(folder) / "run.yaml").write_text(_run_config(demo_images, start_method))
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AGENET_", "MLFLOW_", "DAGSTER_HOME"))}
        dagster = Path(sys.executable).parent / "dagster"
        done = subprocess.run(
            [str(dagster), "job", "execute", "-m", "agenet_pipeline", "-j", "data_job", "-c", "run.yaml"],
            cwd=folder,
            env={**inherited, "DAGSTER_HOME": folder},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"data_job failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        os.environ.pop("AGENET_HOME", None)
        here = Path.cwd()
        os.chdir(folder)  # the instance's storage is under the working directory's home, .agenet
        try:
            with DagsterInstance.from_config(folder) as instance:
                [run] = instance.get_runs(filters=RunsFilter(job_name="data_job"))
                stats = instance.get_run_stats(run.run_id)
                steps = instance.get_run_step_stats(run.run_id)
        finally:
            os.chdir(here)
    return stats.end_time - stats.start_time, sum(s.end_time - s.start_time for s in steps), len(steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--demo-images", type=int, default=200, help="images per demo dataset")
    args = parser.parse_args()
    measured: dict[str, list[tuple[float, float, int]]] = {way: [] for way in WAYS}
    for index in range(args.runs):
        for way, start_method in WAYS.items():
            measured[way].append(_one_run(args.demo_images, start_method))
            print(f"run {index + 1}, {way}: {measured[way][-1][0]:.1f} s", file=sys.stderr)
    baseline = statistics.median(run for run, _, _ in measured["spawn"])
    print(f"`data_job` on the demo ({args.demo_images} images a dataset), medians of {args.runs} runs\n")
    print("| steps start by | steps | run (s) | in the steps (s) | the rest, per step (s) | run vs spawn |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for way, runs in measured.items():
        run = statistics.median(r for r, _, _ in runs)
        inside = statistics.median(i for _, i, _ in runs)
        steps = runs[0][2]
        print(f"| {way} | {steps} | {run:.1f} | {inside:.1f} | {(run - inside) / steps:.2f} | {run / baseline:.2f}x |")


if __name__ == "__main__":
    main()
