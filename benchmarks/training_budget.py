"""What fits the training budget: the age model's training rate by input size and width, and the full training
time it projects for a dataset, so that a config can pick the largest network that trains within a budget.

    .venv/bin/python benchmarks/training_budget.py                    # recommended, 96/128/160/192 px, full width
    .venv/bin/python benchmarks/training_budget.py --sizes 128 160 --widths 1 0.5 --runs 5

Each network is the recipe's (`recipe_with_changes`, `build_model`, compiled as `training.train` compiles it: Adam,
categorical cross-entropy, accuracy and one-off accuracy), trained by `model.fit` on random images held in memory,
so the number is the network's own cost on this CPU, without the input pipeline (which `benchmarks/training.py`
shows keeps up). A run times `--steps` batches after `--warmup` for training and for prediction (the validation
pass of every epoch); medians over `--runs`, the networks in a different order each run. The ratio is to the first
size at full width, measured in the same runs.

The projection: epochs x (train images / training rate + validation images / prediction rate), with the images of
UTKFace part 1's splits (`--train-images`, `--validation-images`) and `--epochs` (configs/utkface.yaml's
max_epochs). It leaves out the face stage, the evaluation and the machine's noise (the measured 128 px run's
epochs varied from 49 to 142 s on a quiet machine).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _network(recipe: str, size: int, width: float):
    from agenet_pipeline.model.recipes import recipe_with_changes
    from agenet_pipeline.model.training import compiled_model

    network = recipe_with_changes(recipe, {}).network
    filters = [max(1, round(f * width)) for f in network.filters]
    changed = recipe_with_changes(recipe, {"input_size": size, "filters": filters})
    return compiled_model(changed.network, changed.training), len(changed.network.output_bins)


def _rates(recipe: str, size: int, width: float, batch: int, warmup: int, steps: int) -> tuple[float, float]:
    """(training images/s, prediction images/s)."""
    model, bins = _network(recipe, size, width)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, size, size, 3)).astype(np.float32)
    labels = np.eye(bins, dtype=np.float32)[rng.integers(0, bins, batch)]
    for _ in range(warmup):
        model.train_on_batch(images, labels)
        model.predict_on_batch(images)
    started = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(images, labels)
    trained = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(steps):
        model.predict_on_batch(images)
    predicted = time.perf_counter() - started
    return batch * steps / trained, batch * steps / predicted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="recommended")
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 128, 160, 192])
    parser.add_argument("--widths", type=float, nargs="+", default=[1.0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--train-images", type=int, default=6_303, help="UTKFace part 1's train split")
    parser.add_argument("--validation-images", type=int, default=1_567, help="UTKFace part 1's validation split")
    parser.add_argument("--epochs", type=int, default=20, help="configs/utkface.yaml's max_epochs")
    args = parser.parse_args()

    networks = [(size, width) for width in args.widths for size in args.sizes]
    measured: dict[tuple[int, float], list[tuple[float, float]]] = {n: [] for n in networks}
    for run in range(args.runs):
        for network in networks if run % 2 == 0 else networks[::-1]:
            measured[network].append(_rates(args.recipe, *network, args.batch_size, args.warmup, args.steps))
    train = {n: statistics.median(r[0] for r in rates) for n, rates in measured.items()}
    predict = {n: statistics.median(r[1] for r in rates) for n, rates in measured.items()}
    baseline = networks[0] if args.widths[0] == 1.0 else (args.sizes[0], args.widths[0])
    print(f"{args.recipe}, batch {args.batch_size}, medians of {args.runs} runs of {args.steps} steps")
    print("| input | width | train images/s | predict images/s | cost vs first | projected training (min) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for network in networks:
        epoch = args.train_images / train[network] + args.validation_images / predict[network]
        print(
            f"| {network[0]} | x{network[1]:g} | {train[network]:.1f} | {predict[network]:.1f} "
            f"| {train[baseline] / train[network]:.2f} | {args.epochs * epoch / 60:.0f} |"
        )


if __name__ == "__main__":
    main()
