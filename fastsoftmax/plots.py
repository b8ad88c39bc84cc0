"""Pictures of a trained model (needs the ``plot`` extra: matplotlib).

Each function writes a PNG to ``path`` and returns the path; with ``path=None`` it
returns the matplotlib figure instead, for a notebook or for further drawing.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .errors import InputError  # noqa: E402


def weight_images(W, path=None, shape=(28, 28), class_names=None):
    """The tutorial's figure: each class's weights ``W[:, c]`` as an image, red negative, blue positive,
    one shared colour scale; titled with the class names (default: the class indices)."""
    n_classes = W.shape[1]
    names = _names(class_names, n_classes)
    columns = min(n_classes, 5)
    rows = -(-n_classes // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.55 * columns + 1.4, 1.75 * rows + 0.7), squeeze=False)
    limit = float(np.abs(W).max()) or 1.0
    for c, ax in enumerate(axes.flat):
        ax.axis("off")
        if c < n_classes:
            image = ax.imshow(W[:, c].reshape(shape), cmap="RdBu", vmin=-limit, vmax=limit)
            ax.set_title(names[c], fontsize=10)
    fig.suptitle("each pixel's weight in each class's score (blue raises it, red lowers it)")
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="weight")
    return _save(fig, path, tight=False)


def confusion(matrix, path=None, class_names=None):
    """Confusion matrix of counts, rows the true class, columns the predicted one, each cell labelled."""
    n_classes = matrix.shape[0]
    names = _names(class_names, n_classes)
    fig, ax = plt.subplots(figsize=(1.9 + 0.62 * n_classes, 1.5 + 0.55 * n_classes))
    image = ax.imshow(matrix, cmap="Blues")
    long_names = max(len(name) for name in names) > 2
    ax.set_xticks(range(n_classes), names, rotation=45 if long_names else 0, ha="right" if long_names else "center")
    ax.set_yticks(range(n_classes), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"confusion matrix ({int(matrix.sum())} test images)")
    threshold = matrix.max() / 2
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                color="white" if count > threshold else "black")
    fig.colorbar(image, ax=ax, label="images")
    return _save(fig, path)


def curves(history, path=None):
    """Each step's training batch loss, and the validation accuracy at the steps it was measured
    (after each epoch and at the end of training), on a second axis."""
    fig, ax = plt.subplots(figsize=(7, 4.3))
    losses = np.asarray(history["loss"])
    steps = np.arange(1, losses.size + 1)
    ax.plot(steps, losses, lw=0.5, color="tab:blue", alpha=0.5, label="batch loss")
    if losses.size >= 50:
        window = max(10, losses.size // 50)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], smooth, lw=1.5, color="tab:blue", label=f"mean of {window} steps")
    ax.set_xlabel("SGD step")
    ax.set_ylabel("training cross-entropy (batch mean)", color="tab:blue")
    ax.set_xlim(0, max(1, losses.size))
    handles, labels = ax.get_legend_handles_labels()
    if history.get("val_accuracy"):
        twin = ax.twinx()
        line, = twin.plot(history["val_step"], history["val_accuracy"], "o-", color="tab:orange",
                          label="validation accuracy")
        accuracy = np.asarray(history["val_accuracy"])
        twin.set_ylim(max(0.0, accuracy.min() - 0.05), min(1.0, accuracy.max() + 0.02))
        twin.annotate(f"final {accuracy[-1]:.4f}", (history["val_step"][-1], accuracy[-1]),
                      textcoords="offset points", xytext=(-6, -16), ha="right", color="tab:orange",
                      bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.85))
        twin.set_ylabel("validation accuracy", color="tab:orange")
        handles.append(line)
        labels.append(line.get_label())
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize=8, frameon=False)
    ax.set_title("training loss and validation accuracy")
    return _save(fig, path)


def _names(class_names, n_classes):
    if class_names is None:
        return [str(c) for c in range(n_classes)]
    if len(class_names) != n_classes:
        raise InputError(f"class_names has {len(class_names)} names for {n_classes} classes")
    return [str(name) for name in class_names]


def _save(fig, path, tight=True):
    if tight:
        fig.tight_layout()
    if path is None:
        return fig
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
