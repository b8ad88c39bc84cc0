"""The pictures say what was measured: validation accuracy at the steps it was measured, class names."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import fastsoftmax as fs  # noqa: E402
from fastsoftmax import plots  # noqa: E402
from fastsoftmax.cli import CLASS_NAMES  # noqa: E402


def test_validation_accuracy_is_drawn_at_the_steps_it_was_measured(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (200, 16), dtype=np.uint8)
    y = X[:, :3].argmax(axis=1)
    model = fs.SoftmaxRegression(batch_size=20, backend="numpy").fit(X, y, steps=25, validation_data=(X, y))
    figure = plots.curves(model.history)
    loss_axis, accuracy_axis = figure.axes
    line = accuracy_axis.lines[0]
    np.testing.assert_array_equal(line.get_xdata(), [10, 20, 25])  # two epochs of 10 steps, then the end
    np.testing.assert_array_equal(line.get_ydata(), model.history["val_accuracy"])
    assert line.get_ydata()[-1] == model.score(X, y)
    assert loss_axis.get_xlabel() == "SGD step" and "validation accuracy" in accuracy_axis.get_ylabel()
    assert plots.curves(model.history, tmp_path / "c.png") == tmp_path / "c.png" and (tmp_path / "c.png").stat().st_size


def test_class_names_label_the_weight_images_and_the_confusion_matrix():
    names = CLASS_NAMES["fashion-mnist"]
    figure = plots.weight_images(np.random.default_rng(1).standard_normal((784, 10)), class_names=names)
    assert [ax.get_title() for ax in figure.axes if ax.get_title()] == list(names)
    figure = plots.confusion(np.eye(10, dtype=int) * 9, class_names=names)
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(names) == [t.get_text() for t in ax.get_yticklabels()]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    with pytest.raises(fs.InputError, match="class_names has 9 names for 10 classes"):
        plots.confusion(np.eye(10, dtype=int), class_names=names[:9])
