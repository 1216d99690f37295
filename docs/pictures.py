"""The README's pictures: the asset graph, and the demo's group photo with the ages a model gave its faces.

    .venv/bin/python docs/pictures.py                   # docs/asset_graph.png
    .venv/bin/python docs/pictures.py --annotate        # also docs/demo_group.jpg, from models:/agenet@champion

The group photo is drawn (no real person); `--annotate` needs a registered model, as after the Quick start.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

FOLDER = Path(__file__).parent
GROUPS = {
    "raw_datasets": "#e3f2fd",
    "faces": "#e8f5e9",
    "labels": "#fff8e1",
    "training": "#fce4ec",
    "evaluation": "#ede7f6",
    "exports": "#eceff1",
}


def asset_graph(path: Path) -> None:
    """The assets in columns by depth, coloured by group, an arrow for each dependency."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from agenet_pipeline.pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    parents = {k: [p for p in graph.get(k).parent_keys if p in keys] for k in keys}
    depth: dict = {}

    def level(key) -> int:
        if key not in depth:
            depth[key] = 1 + max((level(p) for p in parents[key]), default=-1)
        return depth[key]

    columns: dict[int, list] = {}
    for key in keys:
        columns.setdefault(level(key), []).append(key)
    place = {key: (x, (len(column) - 1) / 2 - y) for x, column in columns.items() for y, key in enumerate(column)}
    tallest = max(map(len, columns.values()))
    figure, axis = plt.subplots(figsize=(1.9 * len(columns), 0.7 * tallest + 0.8))
    for key, (x, y) in place.items():
        for parent in parents[key]:
            px, py = place[parent]
            axis.annotate("", (x - 0.45, y), (px + 0.45, py), arrowprops={"arrowstyle": "->", "color": "#888"})
    for key, (x, y) in place.items():
        group = graph.get(key).group_name
        axis.text(
            x,
            y,
            key.to_user_string(),
            ha="center",
            va="center",
            fontsize=9,
            bbox={"boxstyle": "round", "facecolor": GROUPS.get(group, "white"), "edgecolor": "#777"},
        )
    for index, (group, colour) in enumerate(GROUPS.items()):
        axis.text(index * 1.3, tallest / 2 + 0.3, group, fontsize=9, bbox={"boxstyle": "round", "facecolor": colour})
    axis.set_xlim(-0.6, len(columns) - 0.4)
    axis.set_ylim(-tallest / 2, tallest / 2 + 0.6)
    axis.axis("off")
    figure.savefig(path, dpi=90, bbox_inches="tight")


def demo_group(path: Path) -> None:
    """A drawn group photo annotated by `agenet predict --annotate` with the registered champion."""
    import cv2
    import numpy as np

    from agenet_pipeline.demo.writers import group_photo

    with tempfile.TemporaryDirectory() as work:
        photo = Path(work) / "photos" / "demo_group.jpg"
        photo.parent.mkdir()
        cv2.imwrite(
            str(photo), cv2.cvtColor(group_photo(np.random.default_rng(7), faces=5, size=240), cv2.COLOR_RGB2BGR)
        )
        agenet = Path(sys.executable).parent / "agenet"
        subprocess.run([str(agenet), "predict", str(photo.parent), "--annotate", str(Path(work) / "out")], check=True)
        (Path(work) / "out" / "demo_group.jpg").replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotate", action="store_true", help="also annotate the demo group photo")
    args = parser.parse_args()
    asset_graph(FOLDER / "asset_graph.png")
    if args.annotate:
        demo_group(FOLDER / "demo_group.jpg")


if __name__ == "__main__":
    main()
