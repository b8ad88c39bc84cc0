"""Pictures of a trained model (needs the ``plot`` extra: matplotlib)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def weight_images(W, path, shape=(28, 28)):
    """The tutorial's figure: each class's weights as an image (red negative, blue positive)."""
    n_classes = W.shape[1]
    fig, axes = plt.subplots(1, n_classes, figsize=(1.6 * n_classes, 2))
    limit = float(np.abs(W).max()) or 1.0
    for c, ax in enumerate(np.atleast_1d(axes)):
        ax.imshow(W[:, c].reshape(shape), cmap="RdBu", vmin=-limit, vmax=limit)
        ax.set_title(str(c))
        ax.axis("off")
    return _save(fig, path)


def confusion(matrix, path):
    """Confusion matrix, rows true class, columns predicted."""
    fig, ax = plt.subplots(figsize=(5, 4.5))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(image, ax=ax)
    return _save(fig, path)


def curves(history, path):
    """Training loss per step (and validation accuracy per epoch, when recorded)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(history["loss"], lw=0.5, color="tab:blue")
    ax.set_xlabel("step")
    ax.set_ylabel("batch loss", color="tab:blue")
    if history["val_accuracy"]:
        twin = ax.twinx()
        twin.plot(np.array(history["epoch"]) * len(history["loss"]) / max(history["epoch"]),
                  history["val_accuracy"], "o-", color="tab:orange")
        twin.set_ylabel("validation accuracy", color="tab:orange")
    return _save(fig, path)


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
