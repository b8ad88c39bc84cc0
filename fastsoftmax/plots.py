"""Pictures of a trained model (needs the ``plot`` extra: matplotlib).

Each function writes a PNG to ``path`` and returns the path; with ``path=None`` it
returns the matplotlib figure instead, for a notebook or for further drawing.
"""

from __future__ import annotations

import numbers

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .errors import InputError, InputTypeError  # noqa: E402

LOSS_COLOR = "tab:blue"
SGD_COLOR = "tab:orange"         # validation points measured with the SGD weights
AVERAGED_COLOR = "tab:purple"    # ... and with the averaged weights


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


def confusion(matrix, path=None, class_names=None, *, dataset=None, accuracy=None):
    """Confusion matrix of counts, rows the true class, columns the predicted one, each cell labelled;
    titled with the dataset and the accuracy.

    Parameters
    ----------
    matrix : array_like of int ``[C, C]``
        ``matrix[true, predicted]`` counts of test images.
    path : str or Path, optional
        Where to write the PNG; None returns the figure.
    class_names : sequence of str, optional
        The classes' names, ``C`` of them (default: the class indices).
    dataset : str, optional
        The dataset's name, for the title.
    accuracy : float, optional
        The test accuracy, for the title; default: the matrix's own, its diagonal over its
        total. Given, it must be the matrix's to within half an image.

    Returns
    -------
    Path or str or matplotlib.figure.Figure
        ``path``, or the figure when ``path`` is None.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.dtype.kind not in "iu":
        raise InputError(f"matrix must be a square [C, C] array of integer counts, got shape {matrix.shape} "
                         f"and dtype {matrix.dtype}")
    n_classes = matrix.shape[0]
    names = _names(class_names, n_classes)
    dataset = _text(dataset, "dataset")
    total, correct = int(matrix.sum()), int(np.trace(matrix))
    if total <= 0:
        raise InputError(f"matrix counts no images (its total is {total})")
    accuracy = _accuracy(accuracy, correct, total)

    fig, ax = plt.subplots(figsize=(1.9 + 0.62 * n_classes, 1.8 + 0.55 * n_classes))
    image = ax.imshow(matrix, cmap="Blues")
    long_names = max(len(name) for name in names) > 2
    ax.set_xticks(range(n_classes), names, rotation=45 if long_names else 0, ha="right" if long_names else "center")
    ax.set_yticks(range(n_classes), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    where = f"{dataset} test set" if dataset else "test set"
    ax.set_title(f"confusion matrix, {where}\naccuracy {accuracy:.4f} ({correct:,} of {total:,} images correct)")
    threshold = matrix.max() / 2
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                color="white" if count > threshold else "black")
    fig.colorbar(image, ax=ax, label="images")
    return _save(fig, path)


def curves(history, path=None, *, average_start=None, title=None, dataset=None):
    """Each step's training batch loss, and the validation accuracy at the steps it was measured
    (after each epoch and at the end of training), in two panels over the same steps.

    The validation points are markers with no line between them: they are an epoch or more
    apart, and a line would draw a trend that was not measured. With ``average_start``, a
    dashed line marks where averaging begins and the points say which weights they measured.

    Parameters
    ----------
    history : dict
        A model's ``history``: ``"loss"``, each step's mean batch loss; optionally
        ``"val_step"`` and ``"val_accuracy"`` (and ``"epoch"``), the validation accuracy
        and the step (and epoch) it was measured at.
    path : str or Path, optional
        Where to write the PNG; None returns the figure.
    average_start : int, optional
        With averaged SGD: the steps done before the first step whose weights enter the
        average, ``ceil(n / batch_size)`` for a model's ``average`` of ``n`` samples (0 for
        ``average=True``). Validation points measured after more steps than this used the
        averaged weights; the batch losses are always those of the SGD weights.
        None: no averaging.
    title : str, optional
        The figure's title; default: what it shows, on ``dataset``.
    dataset : str, optional
        The dataset's name, for the default title.

    Returns
    -------
    Path or str or matplotlib.figure.Figure
        ``path``, or the figure when ``path`` is None.
    """
    losses, val_steps, val_accuracy, epochs = _history(history)
    average_start = _average_start(average_start)
    title, dataset = _text(title, "title"), _text(dataset, "dataset")
    steps = losses.size
    if val_steps.size:
        fig, (accuracy_ax, loss_ax) = plt.subplots(2, 1, sharex=True, figsize=(7, 6), height_ratios=(2, 3),
                                                   layout="constrained")
        axes = (accuracy_ax, loss_ax)
    else:
        fig, loss_ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
        axes = (loss_ax,)
    # Room either side of the run, so that a point measured after the first or the last
    # step is drawn whole rather than cut by the frame.
    last = max(steps, val_steps.max(initial=0), 1)
    loss_ax.set_xlim(-0.035 * last, 1.035 * last)
    _draw_losses(loss_ax, losses, sgd_only=average_start is not None)
    if val_steps.size:
        _draw_validation(accuracy_ax, val_steps, val_accuracy, average_start, epochs)
    if average_start is not None and average_start < steps:
        for ax in axes:
            ax.axvline(average_start, color="0.3", ls="--", lw=1,
                       label=f"averaging begins after step {average_start:,}")
    handles, labels = [], []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    fig.align_ylabels(axes)
    default = "training loss and validation accuracy" if val_steps.size else "training loss"
    fig.suptitle(title or (f"{dataset}: {default}" if dataset else default))
    return _save(fig, path, tight=False)


def sweep(runs, path=None, *, best=None, dataset=None):
    """Validation accuracy against the learning rate (log scale): a line per weight decay (and learning-rate
    decay) through the mean over seeds, the seeds' range as a band around it, the best run marked.

    ``runs`` as :func:`fastsoftmax.model_selection.sweep` returns them; ``best`` its index.
    """
    if not isinstance(runs, list) or not runs or not all(isinstance(r, dict) for r in runs):
        raise InputTypeError(f"runs must be a non-empty list of dicts, got {type(runs).__name__}")
    lines = {}
    for run in runs:
        lines.setdefault((run["weight_decay"], run["lr_decay"]), {}).setdefault(run["learning_rate"], []).append(
            run["validation_accuracy"])
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    several_decays = len({key[1] for key in lines}) > 1
    for (weight_decay, lr_decay), by_rate in sorted(lines.items()):
        rates = sorted(by_rate)
        values = [np.asarray(by_rate[r]) for r in rates]
        label = f"weight decay {weight_decay:g}" + (f", lr decay {lr_decay:g}" if several_decays else "")
        (line,) = ax.plot(rates, [v.mean() for v in values], marker="o", label=label)
        if max(v.size for v in values) > 1:
            ax.fill_between(rates, [v.min() for v in values], [v.max() for v in values], color=line.get_color(),
                            alpha=0.18, linewidth=0)
    seeds = len({run["seed"] for run in runs})
    if best is not None:
        chosen = runs[best]
        ax.plot([chosen["learning_rate"]], [chosen["validation_accuracy"]], marker="*", markersize=16, color="gold",
                markeredgecolor="black", linestyle="none",
                label=f"best: {chosen['validation_accuracy']:.4f} (seed {chosen['seed']})")
    ax.set_xscale("log")
    rates = sorted({run["learning_rate"] for run in runs})
    ax.set_xticks(rates, [f"{r:g}" for r in rates])
    ax.minorticks_off()
    ax.margins(x=0.08, y=0.12)  # the markers (and the best run's star) inside the frame
    ax.set_xlabel("learning rate")
    ax.set_ylabel("validation accuracy")
    what = f"mean over {seeds} seeds, the band their range" if seeds > 1 else "one seed"
    ax.set_title(f"{dataset + ': ' if dataset else ''}validation accuracy by learning rate\n({what})", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    return _save(fig, path)


def _draw_losses(ax, losses, sgd_only):
    steps = np.arange(1, losses.size + 1)
    whose = ", plain SGD weights" if sgd_only else ""
    ax.plot(steps, losses, lw=0.5, color=LOSS_COLOR, alpha=0.45, marker="." if losses.size < 50 else None,
            label=f"batch loss{whose}")
    if losses.size >= 50:
        window = max(10, losses.size // 50)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], smooth, lw=1.5, color=LOSS_COLOR, label=f"mean of the last {window} steps")
    top = _loss_axis_top(losses)
    above = losses > top
    if above.any():
        worst = int(np.argmax(losses))
        # On the top edge, inside the frame: the reader sees where the axis cut losses off.
        ax.plot(steps[above], np.full(int(above.sum()), 0.975), ls="none", marker="^", ms=4, color=LOSS_COLOR,
                transform=ax.get_xaxis_transform(),
                label=f"{int(above.sum())} losses above the axis (largest {losses[worst]:.3g}, step {worst + 1})")
    ax.set_ylim(0, top)
    ax.set_xlabel("SGD step")
    ax.xaxis.set_major_locator(MaxNLocator("auto", integer=True, steps=[1, 2, 5, 10]))
    ax.set_ylabel("training cross-entropy (batch mean)", fontsize=9)


def _loss_axis_top(losses):
    """The loss axis stops a little above the 99th percentile of the losses after the run's first
    tenth, not at the largest loss.

    At the tutorial's learning rate the first steps reach losses of 5-10 while a ten-epoch run
    settles near 0.4; an axis up to the largest loss leaves that settled part a flat line at
    the bottom. A log axis would keep every spike, but would still squeeze the settled losses
    (0.3-0.5, in a run spanning 0.2-9.5) into an eighth of its height. The steps cut off are
    marked on the top edge instead, with their count and the largest loss in the legend."""
    finite = losses[np.isfinite(losses)]
    if not finite.size:
        return 1.0
    robust = 1.1 * float(np.percentile(finite[finite.size // 10:], 99))
    top = 1.05 * float(finite.max()) if finite.max() <= robust else robust
    return top if top > 0 else 1.0


def _draw_validation(ax, steps, accuracy, average_start, epochs):
    averaged = np.zeros(steps.size, bool) if average_start is None else steps > average_start
    if average_start is None:
        groups = [(~averaged, "o", SGD_COLOR, "validation accuracy")]
    else:
        not_begun = "" if averaged.any() else f" (averaging after step {average_start:,} not reached)"
        groups = [(~averaged, "o", SGD_COLOR, f"validation accuracy, plain SGD weights{not_begun}"),
                  (averaged, "D", AVERAGED_COLOR, "validation accuracy, averaged weights")]
    for chosen, marker, color, label in groups:
        if chosen.any():
            ax.plot(steps[chosen], accuracy[chosen], ls="none", marker=marker, ms=6, color=color, label=label)
    low, high = float(accuracy.min()), float(accuracy.max())
    spread = max(high - low, 0.02)
    limits = (low - 0.3 * spread, high + 0.6 * spread)  # the top share holds the labels
    ax.set_ylim(limits)
    # No tick past what an accuracy can be; set_yticks widens the view to its ticks, so the limits go back.
    ax.set_yticks([tick for tick in ax.get_yticks() if 0 <= tick <= 1])
    ax.set_ylim(limits)
    ax.set_ylabel("validation accuracy", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    _label_points(ax, steps, accuracy, np.where(averaged, AVERAGED_COLOR, SGD_COLOR))
    if epochs is not None and epochs.size == steps.size and epochs[0] > 0:
        steps_per_epoch = steps[0] / epochs[0]
        top = ax.secondary_xaxis("top", functions=(lambda s: s / steps_per_epoch, lambda e: e * steps_per_epoch))
        top.set_xlabel("epoch", fontsize=8)
        top.tick_params(labelsize=8)


def _label_points(ax, steps, accuracy, colors):
    """The last point's value always; the others' too when there are few and far apart."""
    left, right = ax.get_xlim()
    width = right - left
    chosen = [steps.size - 1]
    if steps.size <= 5:
        chosen += [i for i in range(steps.size - 1) if steps[i + 1] - steps[i] >= 0.12 * width]
    for i in chosen:
        where = (steps[i] - left) / width
        ha, dx = ("right", 4) if where > 0.85 else ("left", -4) if where < 0.15 else ("center", 0)
        ax.annotate(f"{accuracy[i]:.4f}", (steps[i], accuracy[i]), textcoords="offset points", xytext=(dx, 7),
                    ha=ha, va="bottom", fontsize=8, color=colors[i])


def _history(history):
    try:
        losses = np.asarray(history["loss"], dtype=np.float64)
        val_steps = np.asarray(history.get("val_step", ()), dtype=np.float64)
        val_accuracy = np.asarray(history.get("val_accuracy", ()), dtype=np.float64)
        epochs = history.get("epoch")
        epochs = None if epochs is None or not len(epochs) else np.asarray(epochs, dtype=np.float64)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise InputError(f"history must be a model's history, a dict with a 'loss' list of numbers ({exc!r})") from exc
    if losses.ndim != 1 or val_steps.ndim != 1 or val_steps.shape != val_accuracy.shape:
        raise InputError(f"history's 'loss', 'val_step' and 'val_accuracy' must be flat lists, the last two "
                         f"of one length; got {losses.shape}, {val_steps.shape} and {val_accuracy.shape}")
    return losses, val_steps, val_accuracy, epochs


def _average_start(average_start):
    if average_start is None:
        return None
    if isinstance(average_start, (bool, np.bool_)) or not isinstance(average_start, numbers.Integral):
        raise InputTypeError(f"average_start must be a number of steps (an int) or None, got {average_start!r}")
    if average_start < 0:
        raise InputError(f"average_start must be >= 0 steps, got {average_start}")
    return int(average_start)


def _accuracy(accuracy, correct, total):
    measured = correct / total
    if accuracy is None:
        return measured
    if isinstance(accuracy, (bool, np.bool_)) or not isinstance(accuracy, numbers.Real):
        raise InputTypeError(f"accuracy must be a number or None, got {accuracy!r}")
    # A title that disagrees with the cells below it (another set's accuracy, say) would mislead.
    if not abs(accuracy - measured) <= 0.5 / total:
        raise InputError(f"accuracy {accuracy} is not the matrix's: {correct} of {total} images are on its "
                         f"diagonal, {measured:.4f}")
    return float(accuracy)


def _text(value, name):
    if value is not None and not isinstance(value, str):
        raise InputTypeError(f"{name} must be a str or None, got {value!r}")
    return value


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
