"""The pictures say what was measured: validation accuracy at the steps it was measured, with the
weights it was measured on, a loss axis that early spikes do not flatten, the dataset and accuracy
in the confusion matrix's title, class names."""

import math

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import fastsoftmax as fs  # noqa: E402
from fastsoftmax import plots  # noqa: E402
from fastsoftmax.cli import CLASS_NAMES, confusion_matrix  # noqa: E402


def _fit(steps=25, **settings):
    """A real run on 200 rows in batches of 20: validation after steps 10 and 20 (the epochs) and 25 (the end)."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (200, 16), dtype=np.uint8)
    y = X[:, :3].argmax(axis=1)
    model = fs.SoftmaxRegression(batch_size=20, backend="numpy", **settings)
    return model.fit(X, y, steps=steps, validation_data=(X, y)), X, y


def _axes(figure, ylabel):
    return next(ax for ax in figure.axes if ylabel in ax.get_ylabel())


def _validation_points(figure):
    """The accuracy axes, and its lines that draw validation points."""
    ax = _axes(figure, "validation accuracy")
    return ax, [line for line in ax.lines if line.get_label().startswith("validation accuracy")]


def _legend_texts(figure):
    legends = list(figure.legends) + [ax.get_legend() for ax in figure.axes if ax.get_legend()]
    return [text.get_text() for legend in legends for text in legend.get_texts()]


def _inside(inner, outer):
    return outer.x0 <= inner.x0 and inner.x1 <= outer.x1 and outer.y0 <= inner.y0 and inner.y1 <= outer.y1


def test_validation_accuracy_is_drawn_at_the_steps_it_was_measured_as_points_with_no_line_between(tmp_path):
    model, X, y = _fit()
    figure = plots.curves(model.history)
    ax, lines = _validation_points(figure)
    steps = np.concatenate([line.get_xdata() for line in lines])
    accuracy = np.concatenate([line.get_ydata() for line in lines])
    np.testing.assert_array_equal(steps, [10, 20, 25])  # two epochs of 10 steps, then the end
    np.testing.assert_array_equal(accuracy, model.history["val_accuracy"])
    assert accuracy[-1] == model.score(X, y)
    for line in lines:  # markers only: a line would draw a trend between points 10 steps apart
        assert line.get_linestyle() == "None" and line.get_marker() not in (None, "", "None")
    assert all(np.ptp(line.get_xdata()) == 0 for line in ax.lines if line not in lines)  # nothing else joins steps
    assert _axes(figure, "cross-entropy").get_xlabel() == "SGD step"
    assert plots.curves(model.history, tmp_path / "c.png") == tmp_path / "c.png" and (tmp_path / "c.png").stat().st_size


def test_the_last_point_and_the_values_are_inside_their_axes_and_off_the_loss_curve():
    model, _, _ = _fit()
    figure = plots.curves(model.history)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    ax, lines = _validation_points(figure)
    loss_ax = _axes(figure, "cross-entropy")
    box = ax.get_window_extent(renderer)
    for line in lines:
        radius = (line.get_markersize() + line.get_markeredgewidth()) / 2 * figure.dpi / 72
        for x, y in ax.transData.transform(line.get_xydata()):
            assert box.x0 + radius <= x <= box.x1 - radius and box.y0 + radius <= y <= box.y1 - radius
    labels = [text for text in ax.texts if text.get_text()]
    assert any(f"{model.history['val_accuracy'][-1]:.4f}" in text.get_text() for text in labels)
    for text in labels:
        extent = text.get_window_extent(renderer)
        assert _inside(extent, box), text.get_text()
        assert not extent.overlaps(loss_ax.get_window_extent(renderer)), text.get_text()
    assert not [line for line in loss_ax.lines if line.get_label().startswith("validation")]


def test_averaging_start_is_marked_and_each_point_says_which_weights_it_measured():
    samples = 200  # averaging begins once 200 samples are seen: after ceil(200 / 20) = 10 steps
    model, X, y = _fit(average=samples)
    plain, _, _ = _fit()
    # The model's own convention: after 10 steps nothing is averaged yet, so it predicts with the SGD weights.
    assert model.history["val_accuracy"][0] == plain.history["val_accuracy"][0]
    start = math.ceil(samples / 20)
    figure = plots.curves(model.history, average_start=start)
    _, lines = _validation_points(figure)
    by_label = {line.get_label(): line.get_xdata().tolist() for line in lines}
    assert by_label == {"validation accuracy, plain SGD weights": [10],
                        "validation accuracy, averaged weights": [20, 25]}
    assert model.history["val_accuracy"][-1] == model.score(X, y)  # the last point: the averaged weights' accuracy
    for ax in figure.axes[:2]:
        assert [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"] == [start]
    texts = _legend_texts(figure)
    assert f"averaging begins after step {start}" in texts
    assert "batch loss, plain SGD weights" in texts  # the loss is never the averaged weights'

    figure = plots.curves(model.history, average_start=30)  # beyond the run: averaging never began
    _, lines = _validation_points(figure)
    assert [line.get_label() for line in lines] == [
        "validation accuracy, plain SGD weights (averaging after step 30 not reached)"]
    assert not [line for ax in figure.axes for line in ax.lines if line.get_linestyle() == "--"]

    texts = _legend_texts(plots.curves(plain.history))
    assert "validation accuracy" in texts and not [text for text in texts if "averag" in text]


def test_a_spike_in_the_first_steps_does_not_stretch_the_loss_axis():
    rng = np.random.default_rng(2)
    losses = 0.4 + 0.1 * rng.random(1000)
    settled = losses.max()
    losses[:5] = [2.3, 9.5, 60.0, 7.0, 3.0]
    history = {"loss": losses.tolist(), "val_step": [550, 1000], "epoch": [1.0, 1000 / 550],
               "val_accuracy": [0.84, 0.85]}
    figure = plots.curves(history)
    loss_ax = _axes(figure, "cross-entropy")
    bottom, top = loss_ax.get_ylim()
    assert bottom == 0 and settled <= top < 1.5 * settled
    assert "5 losses above the axis (largest 60, step 3)" in _legend_texts(figure)
    marks = [line for line in loss_ax.lines if "above the axis" in line.get_label()]
    assert [mark.get_xdata().tolist() for mark in marks] == [[1, 2, 3, 4, 5]]

    history["loss"] = losses[5:].tolist()  # no spike: the axis holds every loss and nothing is marked
    figure = plots.curves(history)
    assert _axes(figure, "cross-entropy").get_ylim()[1] >= settled
    assert not [text for text in _legend_texts(figure) if "above the axis" in text]


def test_the_confusion_matrix_title_names_the_dataset_and_the_accuracy():
    model, X, y = _fit()
    matrix = confusion_matrix(y, model.predict(X), model.n_classes)
    accuracy = model.score(X, y)
    for given in (accuracy, None):  # None: the matrix's own accuracy, its diagonal over its total
        title = plots.confusion(matrix, dataset="fashion-mnist", accuracy=given).axes[0].get_title()
        assert "fashion-mnist" in title and f"accuracy {accuracy:.4f}" in title
        assert f"{np.trace(matrix)} of {matrix.sum()} images" in title
    with pytest.raises(fs.InputError, match=r"accuracy 0\.5 is not the matrix's"):
        plots.confusion(matrix, accuracy=0.5 if abs(accuracy - 0.5) > 0.01 else 0.9)
    with pytest.raises(fs.InputTypeError, match="dataset must be a str"):
        plots.confusion(matrix, dataset=3)
    with pytest.raises(fs.InputError, match="square"):
        plots.confusion(matrix[:2])


def test_curves_refuses_arguments_it_cannot_draw():
    model, _, _ = _fit()
    wrong = ((-1, fs.InputError), (True, fs.InputTypeError), (10.5, fs.InputTypeError), ("10", fs.InputTypeError))
    for start, error in wrong:
        with pytest.raises(error, match="average_start must be"):
            plots.curves(model.history, average_start=start)
    with pytest.raises(fs.InputTypeError, match="title must be a str"):
        plots.curves(model.history, title=["loss"])
    with pytest.raises(fs.InputError, match="history must be a model's history"):
        plots.curves({"val_step": [1]})
    with pytest.raises(fs.InputError, match="of one length"):
        plots.curves({"loss": [1.0, 0.5], "val_step": [1, 2], "val_accuracy": [0.5]})


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


@pytest.mark.realdata
def test_the_tutorial_run_with_averaging_on_fashion_mnist(fashion_dir):
    """``fastsoftmax train --dataset fashion-mnist --average``: 1000 steps of 100, averaging after
    step 500, validation after epoch 1 (step 550) and at the end; the loss at step 6 reaches 9.6."""
    data = fs.read_data_sets(fashion_dir, dataset="fashion-mnist", seed=0, download=False)
    model = fs.SoftmaxRegression(steps=1000, batch_size=100, learning_rate=0.5, average=50_000, progress=False)
    model.fit(data.train.pixels, data.train.class_indices, n_classes=10,
              validation_data=(data.validation.pixels, data.validation.class_indices))
    figure = plots.curves(model.history, average_start=500, dataset="fashion-mnist")
    figure.canvas.draw()
    ax, lines = _validation_points(figure)
    assert [(line.get_label(), line.get_xdata().tolist()) for line in lines] == [
        ("validation accuracy, averaged weights", [550, 1000])]
    box = ax.get_window_extent()
    assert all(_inside(text.get_window_extent(), box) for text in ax.texts)
    loss_ax = _axes(figure, "cross-entropy")
    losses = np.asarray(model.history["loss"])
    assert losses.max() > 5 and loss_ax.get_ylim()[1] < 5  # the early spike is marked, not the axis' top
    assert any(text.startswith(f"{(losses > loss_ax.get_ylim()[1]).sum()} losses above the axis")
               for text in _legend_texts(figure))
    assert figure.texts[0].get_text() == "fashion-mnist: training loss and validation accuracy"
