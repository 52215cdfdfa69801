"""Shared bits of the example scripts: where pictures go, and a headless matplotlib."""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")  # the examples only write PNG files
import matplotlib.pyplot as plt  # noqa: E402

OUTPUT = pathlib.Path(__file__).resolve().parent / "output"


def save(fig, name):
    """Saves `fig` as examples/output/<name>.png and prints where."""
    OUTPUT.mkdir(exist_ok=True)
    path = OUTPUT / f"{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"saved {path}")
    return path
