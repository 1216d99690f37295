"""The report's figures as PNG bytes: the confusion matrix, the reliability diagram, feature maps of a face."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from agenet_pipeline.evaluation.scores import Calibration

DPI = 80


def _pyplot():
    """pyplot on the Agg backend: figures are drawn in worker processes, with no display."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    _pyplot().close(figure)
    return buffer.getvalue()


def confusion_figure(matrix: np.ndarray, labels: Sequence[str], title: str) -> bytes:
    """Rows are the true bins, shaded by the share of the row predicted in each column; cells give counts."""
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros(matrix.shape, np.float64), where=rows > 0)
    figure, axis = _pyplot().subplots(figsize=(7, 6))
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            axis.text(j, i, str(count), ha="center", va="center", color="white" if shares[i, j] > 0.5 else "black")
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel("predicted bin")
    axis.set_ylabel("true bin")
    axis.set_title(title)
    figure.colorbar(image, ax=axis, label="share of the true bin")
    return png(figure)


def reliability_figure(calibration: Calibration, title: str) -> bytes:
    """Accuracy against mean confidence per confidence interval, the diagonal being perfect calibration."""
    table = calibration.table
    figure, (top, bottom) = _pyplot().subplots(2, 1, figsize=(5.5, 6), height_ratios=(3, 1), sharex=True)
    width = float(table["upper"][0] - table["lower"][0])
    centres = ((table["lower"] + table["upper"]) / 2).to_numpy()
    top.bar(centres, table["accuracy"].fill_null(0).to_numpy(), width=width * 0.9, label="accuracy")
    top.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    top.set_ylabel("accuracy")
    top.set_title(f"{title} (ECE {calibration.ece:.3f})")
    top.legend(loc="upper left")
    bottom.bar(centres, table["examples"].to_numpy(), width=width * 0.9, color="grey")
    bottom.set_xlabel("confidence (top bin probability)")
    bottom.set_ylabel("examples")
    bottom.set_xlim(0, 1)
    return png(figure)


def feature_maps_figure(image: np.ndarray, maps: Sequence[tuple[str, np.ndarray]], title: str) -> bytes:
    """The face (RGB 0-255) in the first column, then per conv layer a row of its feature maps (H x W x K)."""
    columns = 1 + max(m.shape[-1] for _, m in maps)
    figure, axes = _pyplot().subplots(len(maps), columns, figsize=(1.6 * columns, 1.6 * len(maps)), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    axes[0, 0].imshow(np.clip(image, 0, 255).astype(np.uint8))
    axes[0, 0].set_title("input", fontsize=9)
    for row, (name, activations) in enumerate(maps):
        axes[row, 1].set_title(name, fontsize=9, loc="left")
        for k in range(activations.shape[-1]):
            axes[row, 1 + k].imshow(activations[..., k], cmap="viridis")
    figure.suptitle(title)
    return png(figure)
