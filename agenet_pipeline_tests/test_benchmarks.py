"""The benchmarks' help and usage lines name only what each script has, and the serving benchmark runs."""

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def training_benchmark():
    spec = importlib.util.spec_from_file_location("training_benchmark", BENCHMARKS / "training.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # imports no TensorFlow: that happens in main()
    return module


def usage_lines(text: str) -> list[list[str]]:
    """The arguments of each `benchmarks/training.py ...` command written in `text`, comments left out."""
    return [shlex.split(args.split("#")[0]) for args in re.findall(r"benchmarks/training\.py([^\n`]*)", text)]


def test_every_usage_line_in_the_docstring_and_the_readme_parses(training_benchmark):
    written = usage_lines(training_benchmark.__doc__) + usage_lines((BENCHMARKS / "README.md").read_text())
    assert len(written) >= 5
    for arguments in written:
        training_benchmark.parse_args(arguments)  # an unknown option or variant exits


def test_the_help_names_exactly_the_variants_the_script_builds(training_benchmark, capsys):
    with pytest.raises(SystemExit):
        training_benchmark.parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    named = re.search(r"some of ([\w, -]+?)(?: --|$)", help_text)[1]
    assert [v.strip() for v in named.split(",")] == list(training_benchmark.VARIANTS)
    source = (BENCHMARKS / "training.py").read_text()
    for variant in training_benchmark.VARIANTS:
        assert f'variant == "{variant}"' in source  # pipeline_dataset builds it
    with pytest.raises(SystemExit):
        training_benchmark.parse_args(["--variants", "fast"])


def test_a_quality_candidate_sets_the_face_stage_of_both_sources_and_the_age_model(tmp_path):
    spec = importlib.util.spec_from_file_location("quality_benchmark", BENCHMARKS / "quality.py")
    quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quality)
    args = quality.parse_args(["--try", "whole margin: recipe=recommended faces.context=null max_epochs=20"])
    [settings] = [s for name, s in quality.candidates(args).items() if name == "whole margin"]
    config = quality.run_config(BENCHMARKS.parent / "configs" / "utkface.yaml", settings, seed=1)
    ops = config["ops"]
    assert ops["faces_utkface"]["config"] == {"fallback_whole_image": True, "context": None}
    assert ops["faces_fgnet"]["config"] == {"context": None}
    assert ops["age_model"]["config"] == {"recipe": "recommended", "input_size": 128, "max_epochs": 20, "seed": 1}


def test_the_inference_benchmark_times_the_served_model(tmp_path):
    """A short run of the whole script: the demo network logged as the serving model and loaded back."""
    small = ["--runs", "1", "--photos", "5", "--batch-photos", "10", "--frames", "5"]
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "inference.py"), *small], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = dict(re.findall(r"^\| ([^|]+?) \| ([\d.]+) \|", done.stdout, re.M))
    assert float(rows["end to end p50 (ms)"]) > 0 and float(rows["webcam loop (frames/s)"]) > 0
