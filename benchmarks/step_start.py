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
import sys
import tempfile
from pathlib import Path

import yaml
from quality import REPOSITORY, dagster  # benchmarks/, the folder of this script, is on sys.path

WAYS = {"forkserver (default)": None, "spawn": {"spawn": {}}}


def _one_run(demo_images: int, start_method: dict | None) -> tuple[float, float, int]:
    """(run seconds, seconds inside the steps, steps) of one `data_job` run in a new project folder."""
    from dagster import DagsterInstance, RunsFilter

    project = Path(tempfile.mkdtemp(prefix="step-start-"))  # kept, with its job.log, when the run fails
    config = {"resources": {"dataset_roots": {"config": {"demo_images": demo_images}}}}
    if start_method is not None:
        config["execution"] = {"config": {"start_method": start_method}}
    (project / "run.yaml").write_text(yaml.safe_dump(config))
    shutil.copy(REPOSITORY / "dagster.yaml", project / "dagster.yaml")
    home = {"AGENET_HOME": str(project / ".agenet")}
    arguments = ["job", "execute", "-m", "agenet_pipeline", "-j", "data_job", "-c", "run.yaml"]
    dagster(project, arguments, home, project / "job.log")
    os.environ.update(home)  # the instance's storage is under the home (pipeline/instance.py)
    with DagsterInstance.from_config(str(project)) as instance:
        [run] = instance.get_runs(filters=RunsFilter(job_name="data_job"))
        stats = instance.get_run_stats(run.run_id)
        steps = instance.get_run_step_stats(run.run_id)
    shutil.rmtree(project)
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
