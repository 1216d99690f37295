"""A registered model's scores on photos from another source, through `agenet predict` (the product's own path):
FG-NET by default (`../shared/data/fgnet`: ages in the file names, faces not cropped, many children, scanned
prints). MAE in years first, then exact and one-off bin accuracy, each beside the best constant guess learned
from the model's own training split (median training age; most frequent training bin), overall and per age bin.

    .venv/bin/python benchmarks/cross_source.py                       # models:/agenet@champion, .agenet/ here
    .venv/bin/python benchmarks/cross_source.py --home /path/.agenet --model models:/agenet/3

The training ages come from the home's splits table (the rows the model trained on), so run it on the home that
trained the model.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from agenet_pipeline.core.ages import SEED_BINS
from agenet_pipeline.core.home import Home
from agenet_pipeline.core.status import OK
from agenet_pipeline.datasets.fgnet import read_fgnet
from agenet_pipeline.model.metrics import ConstantGuess, bin_accuracies

FGNET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fgnet"


def predicted(folder: Path, model: str, home: Home) -> pl.DataFrame:
    """`agenet predict` on every photo of `folder`: the most confident face of each (the face stage's rule)."""
    with tempfile.TemporaryDirectory() as work:
        output = Path(work) / "ages.parquet"
        command = [str(Path(sys.executable).parent / "agenet"), "predict", str(folder), "--model", model]
        command += ["--tracking-uri", f"sqlite:///{home.default_store}", "--output", str(output)]
        subprocess.run(command, check=True)
        table = pl.read_parquet(output)
    return table.filter(pl.col("face").is_null() | (pl.col("face") == 0))


def score_rows(ages: np.ndarray, predicted_ages: np.ndarray, predicted_bins: np.ndarray) -> dict[str, float]:
    exact, one_off = bin_accuracies(predicted_bins, SEED_BINS.index(ages))
    return {"MAE (years)": float(np.mean(np.abs(predicted_ages - ages))), "exact": exact, "one-off": one_off}


def table(truth: pl.DataFrame, answers: pl.DataFrame, guess: ConstantGuess) -> tuple[pl.DataFrame, int]:
    """The scores per age group, and how many photos had no usable face."""
    joined = truth.join(answers, left_on="image_path", right_on="file", how="left")
    usable = joined.filter(pl.col("status") == OK)
    rows = []
    groups = [
        ("all", usable),
        *((label, usable.filter(pl.col("bin") == i)) for i, label in enumerate(SEED_BINS.labels)),
    ]
    groups.append(("children, 0-12", usable.filter(pl.col("true_age") < 13)))  # 60+ is the last bin
    for name, part in groups:
        if part.is_empty():
            continue
        ages = part["true_age"].to_numpy()
        model = score_rows(ages, part["age"].to_numpy(), part["predicted_bin"].to_numpy())
        constant = guess.scores(ages)
        rows.append(
            {
                "ages": name,
                "photos": part.height,
                **model,
                "MAE, constant": constant.mae,
                "exact, constant": constant.exact,
                "one-off, constant": constant.one_off,
            }
        )
    return pl.DataFrame(rows), joined.height - usable.height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=FGNET, help="an FG-NET copy (default: %(default)s)")
    parser.add_argument("--model", default="models:/agenet@champion")
    parser.add_argument("--home", type=Path, default=None, help="the home that trained the model (default: .agenet)")
    args = parser.parse_args(argv)
    home = Home.at(args.home)
    truth = read_fgnet(args.folder).filter(pl.col("status") == OK).select("image_path", pl.col("age").alias("true_age"))
    truth = truth.with_columns(pl.Series("bin", SEED_BINS.index(truth["true_age"].to_numpy())))
    splits = pl.read_parquet(home.splits_path)
    guess = ConstantGuess.of(splits.filter(pl.col("split") == "train")["age"].to_numpy())
    answers = predicted(args.folder, args.model, home).rename({"bin": "predicted_bin"})
    scores, unanswered = table(truth, answers, guess)
    print(f"{args.model} on {args.folder}: {truth.height} photos, {unanswered} without a usable face")
    print(f"constant guess: {guess.age:g} years (median training age), bin {SEED_BINS.labels[guess.bin]}\n")
    header = "| " + " | ".join(scores.columns) + " |\n|" + "---|" * len(scores.columns)
    print(header)
    for row in scores.iter_rows():
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
