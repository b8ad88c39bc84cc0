"""The ``fastsoftmax`` command line: ``train``, ``evaluate``, ``sweep``, ``info``, ``bench``.

The only layer that prints. Library errors become one ``error:`` line (a missing
dataset a few lines, ending with how to provide it) and exit status 1; wrong
arguments get argparse's usage message and status 2. Library warnings and log
records of level WARNING and above are one ``warning:`` line each.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import platform
import shlex
import sys
import threading
import time
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from . import __version__
from ._atomic import is_dir
from .data import DATASETS, read_data_sets
from .data.dataset import read_test_set
from .data.fetch import SYSTEM_PACKAGES, cache_root, find_file, mirror_failures, search_dirs
from .errors import DataNotFoundError, FastSoftmaxError, InputError
from .kernels import BACKENDS, backend_problem, get_backend
from .model import SoftmaxRegression
from .model.parameters import BY_NAME, run_length
from .validation import FLOAT_DTYPES

DESCRIPTION = ("Softmax regression on MNIST-format data, as in TensorFlow's MNIST tutorial: train a model, "
               "evaluate one, show what this machine has (info), time the kernels (bench).")

#: Seconds of compiling after which the CLI says what it is doing (a warm cache loads in about 0.2 s).
COMPILE_NOTICE_AFTER_S = 1.0


@contextlib.contextmanager
def _compiling_notice(after=COMPILE_NOTICE_AFTER_S, stream=None):
    """Say on stderr that kernels are being compiled, once the block has taken ``after`` seconds.

    Only a cold start takes that long: the first run on a machine (or with
    ``FASTSOFTMAX_NO_CACHE=1``), when Numba compiles the kernels for this CPU.
    """
    from .kernels._cpu_kernels import CACHE

    later = ("once: later runs load them from the cache" if CACHE
             else "FASTSOFTMAX_NO_CACHE is set: every run compiles them")
    timer = threading.Timer(after, lambda: print(
        f"compiling fastsoftmax's kernels for this CPU ({later}) ...",
        file=stream or sys.stderr, flush=True))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


#: ``--average`` without a number: average over the run's second half, which measured better
#: than averaging all of it (Fashion-MNIST, tutorial recipe: 0.834-0.837 against 0.825-0.827).
HALF_OF_THE_RUN = -1

#: Names of each dataset's classes, for the pictures and ``evaluate``.
CLASS_NAMES = {
    "mnist": tuple("0123456789"),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
}

#: How the datasets are written in sentences.
TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}

#: What each file of a dataset holds, in sentences.
PART_NAMES = {"train_images": "training images", "train_labels": "training labels",
              "test_images": "test images", "test_labels": "test labels"}


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's help with each option's default after its text, where it has one (a default of
    None or False is said in words by the help text itself, or means "off")."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if "%(default)" in text or default is None or default is False or default == argparse.SUPPRESS \
                or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastsoftmax", description=DESCRIPTION, formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"fastsoftmax {__version__}",
                        help="print fastsoftmax's version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help, description):
        return sub.add_parser(name, help=help, description=description, formatter_class=_HelpFormatter)

    train = command("train", "train softmax regression (defaults: the TensorFlow tutorial)",
                    "Train softmax regression on a dataset's training split and report its accuracy on the "
                    "validation and test splits. The defaults are the TensorFlow tutorial's recipe: 1000 SGD steps "
                    "of 100 images at learning rate 0.5, from zero weights.")
    _data_options(train)
    length = train.add_mutually_exclusive_group()
    length.add_argument("--steps", type=_count(1), metavar="N",
                        help="SGD steps (default: 1000, the tutorial's)")
    length.add_argument("--epochs", type=_real(0, strict=True), metavar="E",
                        help="passes over the training split, instead of --steps (may be fractional)")
    _parameter(train, "batch_size", _count(1), "N")
    _parameter(train, "learning_rate", _real(0, strict=True), "RATE")
    _parameter(train, "lr_decay", _real(0), "D", help="inverse-time decay of the rate per epoch: "
                                                          "RATE / (1 + D * epoch)")
    _parameter(train, "weight_decay", _real(0), "L2")
    train.add_argument("--average", nargs="?", const=HALF_OF_THE_RUN, type=_count(0), metavar="N",
                       help="averaged SGD: predict with the mean of the weights after each step once N samples "
                            "have been seen; without N, from half the run's samples (the second half, the "
                            "recommended setting); default: off, plain SGD")
    _parameter(train, "backend", None, None, choices=list(BACKENDS), help=BACKEND_HELP)
    _parameter(train, "dtype", None, None, choices=[d.name for d in FLOAT_DTYPES])
    _parameter(train, "seed", _count(0), "N")
    train.add_argument("--output", type=_path, metavar="DIR",
                       help="directory for model.npz and the pictures (made if needed); default: write nothing")
    train.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    evaluate = command("evaluate", "accuracy, per-class accuracy and confusion matrix of a model",
                       "Evaluate a saved model on a dataset's test split (only its two test files are needed). "
                       "Test images of classes the model does not know count as wrong.")
    evaluate.add_argument("model", type=_path, metavar="MODEL", help="a model file written by train --output")
    _data_options(evaluate, what="the test set")
    evaluate.add_argument("--backend", choices=list(BACKENDS),
                          help="kernels to run on (default: the backend the model was trained with)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    sweep = command("sweep", "train a grid of models in one pass and keep the best on the validation split",
                    "Train every combination of learning rate, weight decay, learning-rate decay and seed in one "
                    "compiled pass, measure each on the validation split and the test set, and mark the best by "
                    "validation accuracy.")
    _sweep_options(sweep)

    command("info", "versions, CPU, threading, cache and datasets found",
            "Print versions, CPU features, Numba's threading layer, the cache directories, the datasets found "
            "and where, and whether a GPU can be used.")

    bench = command("bench", "time the standard workloads on every usable backend",
                    "Time the standard workloads (the tutorial's training run, predictions, single operations) "
                    "on every implementation that runs here, side by side with a plain NumPy loop.")
    _data_options(bench, dataset="fashion-mnist")
    bench.add_argument("--workloads", type=_names(lambda: [w.name for w in _bench().WORKLOADS]), metavar="LIST",
                       help="comma-separated subset of " + ", ".join(w.name for w in _bench().WORKLOADS)
                            + " (default: all)")
    bench.add_argument("--variants", type=_names(lambda: [v.name for v in _bench().VARIANTS]), metavar="LIST",
                       help="comma-separated subset of " + ", ".join(v.name for v in _bench().VARIANTS)
                            + " (default: every one usable here)")
    bench.add_argument("--quick", action="store_true",
                       help="leave out the heavy workloads (W2, 1M rows) and the compile-time probe")
    bench.add_argument("--no-compile-times", action="store_true",
                       help="leave out the compile-time probe (fresh processes compiling the CPU kernels)")
    bench.add_argument("--rounds", type=_count(1), default=7, metavar="N", help="rounds per measurement (median taken)")
    bench.add_argument("--json", type=_path, metavar="FILE", help="save the results as JSON")
    bench.add_argument("--compare", type=_path, metavar="FILE", help="show the change against a saved --json run")
    bench.add_argument("--plot", type=_path, metavar="FILE",
                       help="draw the speed-ups as a bar chart (PNG; needs matplotlib, the plot extra)")
    return parser


def _data_options(parser, dataset="mnist", what="the dataset"):
    parser.add_argument("--dataset", choices=sorted(DATASETS), default=dataset, help="which dataset")
    parser.add_argument("--data-dir", type=_path, metavar="DIR",
                        help=f"directory holding {what}'s files, searched first (it must exist); "
                             "downloads go there too. Default: look in $FASTSOFTMAX_DATA, /usr/share/datasets and "
                             "the cache (fastsoftmax info lists what is found), downloading into the cache")
    parser.add_argument("--offline", action="store_true", help="never download (also FASTSOFTMAX_OFFLINE=1)")


def _count(minimum):
    """An argparse type: a whole number >= ``minimum``."""
    def count(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        return value
    return count


def _real(minimum, strict=False):
    """An argparse type: a finite number above ``minimum`` (or at least it, unless ``strict``)."""
    bound = f"> {minimum}" if strict else f">= {minimum}"

    def number(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number {bound}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text}")
        if value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value
    return number


def _path(text):
    """An argparse type: a path, not empty (an unset shell variable would otherwise name the current directory)."""
    if not text:
        raise argparse.ArgumentTypeError("must name a file or directory, got an empty string")
    return Path(text)


def _bench():
    from . import benchmark

    return benchmark


def _names(known):
    def names(text):
        chosen = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in chosen if n not in known()]
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown) or 'empty list'}; "
                                             f"choose from {', '.join(known())}")
        return chosen
    return names


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    commands = {"train": cmd_train, "evaluate": cmd_evaluate, "sweep": cmd_sweep, "info": cmd_info,
                "bench": cmd_bench}
    with _one_line_warnings():
        try:
            code = commands[args.command](args)
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
            return code
        except BrokenPipeError:
            # Whoever read stdout stopped (``fastsoftmax info | head -1``): end quietly, as a program
            # stopped by SIGPIPE does, with nothing more written to the closed pipe.
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 128 + 13
        except DataNotFoundError as exc:
            print(_data_not_found(exc, args, argv), file=sys.stderr)
            return 1
        except (FastSoftmaxError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130


@contextlib.contextmanager
def _one_line_warnings():
    """Python warnings, and the library's log records of WARNING and above, as one
    ``warning:`` (or ``error:``) line each on stderr, without a source line."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"warning: {' '.join(str(message).split())}", file=sys.stderr)

    class OneLine(logging.Formatter):
        def format(self, record):
            return f"{record.levelname.lower()}: {' '.join(record.getMessage().split())}"

    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(OneLine())
    logger = logging.getLogger("fastsoftmax")
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _check_data_dir(args) -> None:
    """``--data-dir`` names where the data is: one that is not a directory is an error, not ignored."""
    if args.data_dir is None or is_dir(args.data_dir):
        return
    problem = "not a directory" if os.path.lexists(args.data_dir) else "no such directory"
    raise InputError(f"--data-dir {args.data_dir}: {problem}")


def _load(args, seed=None):
    _check_data_dir(args)
    return read_data_sets(args.data_dir, dataset=args.dataset, download=not args.offline, seed=seed,
                          progressbar=sys.stderr.isatty())


def _data_not_found(exc: DataNotFoundError, args, argv) -> str:
    """A missing dataset in the command line's words: what is missing and why, where it was
    looked for, and how to provide it (a dataset that is here, --data-dir, $FASTSOFTMAX_DATA)."""
    name = exc.dataset or args.dataset
    spec = DATASETS.get(name)
    if spec is None or not exc.missing:
        return f"error: {exc}"
    title = TITLES.get(name, name)
    asked = [part for part, file in spec.files.items() if file.filename in exc.missing]
    split_only = args.command == "evaluate"
    if len(asked) == (2 if split_only else 4):
        what = f"{title}'s test set is" if split_only else f"{title} is"
    else:
        what = f"{title}'s {_and(PART_NAMES[p] for p in asked)} are"
    first = f"error: {what} not on this machine"
    if exc.download_off:
        first += f" (not downloaded: {'--offline' if args.offline else exc.download_off})"
    elif exc.attempts:
        failures = mirror_failures(exc.attempts)
        if all(reason.startswith("cannot connect") for _, reason in failures):
            reasons = sorted({reason.split(": ", 1)[-1] for _, reason in failures})
            first += f", and it cannot be downloaded: no mirror could be reached ({'; '.join(reasons)})"
        else:
            first += ", and downloading it failed: " + "; ".join(
                f"{urlsplit(mirror).netloc or mirror} ({reason})" for mirror, reason in failures)
    lines = [first, "  looked in: " + ", ".join(_home(d) for d in exc.searched)]
    for other, where in exc.available.items():
        if split_only:
            lines.append(f"  if the model was trained on {TITLES.get(other, other)}, whose test set is in {where}: "
                         + _command_with(argv, "--dataset", other))
        else:
            lines.append(f"  {TITLES.get(other, other)} is on this machine, in {where}: "
                         + _command_with(argv, "--dataset", other))
    files = ", ".join(exc.missing)
    lines.append(f"  {'or ' if exc.available else ''}put {files} in a folder and add --data-dir FOLDER "
                 f"(or set FASTSOFTMAX_DATA=FOLDER)")
    if exc.download_off and args.offline:
        lines.append("  or, online, leave out --offline to download them")
    if name in SYSTEM_PACKAGES:
        lines.append(f"  or install it: apt-get install {SYSTEM_PACKAGES[name]}")
    return "\n".join(lines)


def _and(words) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _home(path: str) -> str:
    home = str(Path.home())
    return "~" + path[len(home):] if home not in ("", "/") and path.startswith(home + os.sep) else path


def _command_with(argv, option: str, value: str) -> str:
    """The command that was run, with ``option value`` in place of the option's own value."""
    words, kept = list(argv), []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word == option:
            skip = True
        elif not word.startswith(option + "="):
            kept.append(word)
    return "fastsoftmax " + shlex.join(kept + [option, value])


def cmd_train(args) -> int:
    get_backend(args.backend)  # a backend that cannot run here is refused before any data is loaded
    if args.output:
        _writable("--output", args.output, directory=True)  # and an output that cannot be written, before training
    timings = {}
    start = time.perf_counter()
    data = _load(args, args.seed)
    timings["load_s"] = time.perf_counter() - start

    train, val, test = data.train, data.validation, data.test
    batch = min(args.batch_size, train.num_examples)
    average = args.average
    if average == HALF_OF_THE_RUN:
        steps = run_length(args.steps, args.epochs, None, train.num_examples, args.batch_size)
        average = steps * batch // 2
    model = SoftmaxRegression(backend=args.backend, learning_rate=args.learning_rate, batch_size=args.batch_size,
                              steps=args.steps, epochs=args.epochs, dtype=args.dtype, seed=args.seed,
                              lr_decay=args.lr_decay, weight_decay=args.weight_decay,
                              average=_model_average(average), progress=False if args.json else None)
    start = time.perf_counter()
    with _compiling_notice():
        SoftmaxRegression(backend=args.backend, dtype=args.dtype, batch_size=batch, average=average is not None,
                          progress=False).fit(train.pixels[:batch], train.class_indices[:batch], steps=1,
                                              n_classes=10).predict(train.pixels[:1])
    timings["compile_s"] = time.perf_counter() - start  # compiling (or loading cached) kernels, outside the timing

    start = time.perf_counter()
    validation = (val.pixels, val.class_indices) if val.num_examples else None
    model.fit(train.pixels, train.class_indices, validation_data=validation, n_classes=10)
    timings["train_s"] = time.perf_counter() - start

    start = time.perf_counter()
    test_pred = model.predict(test.pixels)
    result = {
        "dataset": data.name, "backend": args.backend, "dtype": args.dtype, "steps": model.steps_done,
        "batch_size": args.batch_size, "learning_rate": args.learning_rate, "lr_decay": args.lr_decay,
        "weight_decay": args.weight_decay, "seed": args.seed, "average": average,
        "validation_accuracy": model.history["val_accuracy"][-1] if validation else None,
        "test_accuracy": float(np.mean(test_pred == test.class_indices)),
        "final_loss": float(np.mean(model.history["loss"][-100:])),
    }
    timings["evaluate_s"] = time.perf_counter() - start
    result.update({k: round(v, 4) for k, v in timings.items()})

    if args.output:
        average_start = None if average is None else -(-average // batch)  # the first averaged step
        result["outputs"] = _write_outputs(args.output, model, test.class_indices, test_pred,
                                           CLASS_NAMES.get(data.name), dataset=data.name,
                                           accuracy=result["test_accuracy"], average_start=average_start)
    if args.json:
        print(json.dumps(result))
    else:
        _print_summary(result)
    return 0


def _model_average(samples):
    """``--average N`` as the model's ``average``: off without it, every step for 0."""
    if samples is None:
        return False
    return True if samples == 0 else samples


def _output_directory(directory: Path) -> Path:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--output {directory}: cannot create that directory ({exc.strerror or exc})") from exc
    return directory


def _write_outputs(directory: Path, model, labels, predictions, class_names=None, *, dataset=None, accuracy=None,
                   average_start=None) -> list:
    _output_directory(directory)
    written = [str(model.save(directory / "model.npz"))]
    try:
        from . import plots
    except ImportError as exc:
        print(f"warning: pictures skipped ({exc}); pip install 'fastsoftmax[plot]'", file=sys.stderr)
        return written
    written.append(str(plots.weight_images(model.W, directory / "weights.png", class_names=class_names)))
    written.append(str(plots.confusion(confusion_matrix(labels, predictions, model.n_classes),
                                       directory / "confusion.png", class_names=class_names, dataset=dataset,
                                       accuracy=accuracy)))
    written.append(str(plots.curves(model.history, directory / "curves.png", average_start=average_start,
                                    dataset=dataset)))
    return written


def confusion_matrix(labels, predictions, n_classes, n_predicted=None) -> np.ndarray:
    """``[true, predicted]`` counts, int64 ``[n_classes, n_predicted]`` (square by default).

    ``labels`` in ``[0, n_classes)``; ``predictions`` in ``[0, n_predicted)``, or -1 for a row
    that counts in no column.
    """
    n_predicted = n_classes if n_predicted is None else n_predicted
    known = predictions >= 0
    cells = labels[known] * n_predicted + predictions[known]
    return np.bincount(cells, minlength=n_classes * n_predicted).reshape(n_classes, n_predicted)


def _print_summary(r):
    print(f"dataset {r['dataset']}, backend {r['backend']} ({r['dtype']}), {r['steps']} steps of "
          f"{r['batch_size']} at learning rate {r['learning_rate']}, lr decay {r['lr_decay']}, "
          f"weight decay {r['weight_decay']}, seed {r['seed']}"
          + (f", weights averaged once {r['average']} samples were seen" if r["average"] is not None else ""))
    if r["validation_accuracy"] is not None:
        print(f"validation accuracy  {r['validation_accuracy']:.4f}")
    print(f"test accuracy        {r['test_accuracy']:.4f}")
    print(f"time: load {r['load_s']:.3f} s, compile {r['compile_s']:.3f} s, "
          f"train {r['train_s']:.3f} s, evaluate {r['evaluate_s']:.3f} s")
    for path in r.get("outputs", []):
        print(f"wrote {path}")


def cmd_evaluate(args) -> int:
    if args.backend:
        get_backend(args.backend)
    model = SoftmaxRegression.load(args.model, backend=args.backend)
    _check_data_dir(args)
    test = read_test_set(args.data_dir, dataset=args.dataset, download=not args.offline,
                         progressbar=sys.stderr.isatty())
    if test.num_examples == 0:
        raise InputError(f"the {args.dataset} test set has no images to evaluate on")
    names = list(CLASS_NAMES.get(args.dataset) or [str(k) for k in range(test.num_classes)])
    labels = model.classes_.tolist()
    column_of_class = [_model_column(k, name, labels) for k, name in enumerate(names)]
    # Columns: the model's classes that are the dataset's, in the dataset's order (a model of every
    # class gives a square matrix with the right answers on its diagonal), then any others it has.
    order = [c for c in column_of_class if c >= 0]
    order += [c for c in range(len(labels)) if c not in order]
    place = np.empty(len(labels), np.int64)
    place[order] = np.arange(len(labels))
    predictions = place[_columns_of(model.predict(test.pixels), labels)]
    truth = np.array([place[c] if c >= 0 else -1 for c in column_of_class])  # -1: always wrong
    matrix = confusion_matrix(test.class_indices, predictions, len(names), len(labels))
    counts = matrix.sum(axis=1)
    per_class = [float(matrix[k, truth[k]] / max(counts[k], 1)) if truth[k] >= 0 else 0.0 for k in range(len(names))]
    unknown = [name for k, name in enumerate(names) if truth[k] < 0 and counts[k]]
    columns = [names[column_of_class.index(c)] if c in column_of_class else str(labels[c]) for c in order]
    result = {"model": str(args.model), "dataset": args.dataset, "images": test.num_examples,
              "accuracy": float(np.mean(predictions == truth[test.class_indices])), "classes": names,
              "per_class_accuracy": per_class, "unknown_classes": unknown,
              "model_classes": [labels[c] for c in order], "confusion_matrix": matrix.tolist()}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.model} on {args.dataset} test: accuracy {result['accuracy']:.4f} ({test.num_examples} images)")
    if unknown:
        print(f"the model does not know {len(unknown)} of the test set's classes ({', '.join(unknown)}): "
              f"their {int(sum(counts[names.index(n)] for n in unknown))} images count as wrong")
    print("per class: " + "  ".join(f"{name}:{a:.3f}" for name, a in zip(names, per_class)))
    print("confusion matrix (rows: true class, columns: the model's predicted class):")
    print(_matrix_text(matrix, names, columns))
    return 0


def _model_column(index: int, name: str, model_classes: list) -> int:
    """The model's column for the dataset's class ``index`` (named ``name``), or -1.

    A model's class matches by number (trained on class indices, or a subset of
    them) or by name (trained on the class names, as strings, or on the indices
    written as strings).
    """
    for column, label in enumerate(model_classes):
        if isinstance(label, str):
            if label in (name, str(index)):
                return column
        elif not isinstance(label, bool) and label == index:
            return column
    return -1


def _columns_of(labels: np.ndarray, model_classes: list) -> np.ndarray:
    """Predicted labels (elements of the model's ``classes_``) as its column indices, int64."""
    column = {label: k for k, label in enumerate(model_classes)}
    distinct, where = np.unique(labels, return_inverse=True)
    return np.array([column[label] for label in distinct.tolist()], dtype=np.int64)[where.reshape(-1)]


def _matrix_text(matrix: np.ndarray, rows: list, columns: list) -> str:
    width = max([5] + [len(c) for c in columns] + [len(str(int(matrix.max(initial=0))))])
    first = max(len(r) for r in rows)
    lines = [" " * first + " " + " ".join(c.rjust(width) for c in columns)]
    lines += [row.ljust(first) + " " + " ".join(f"{v:{width}d}" for v in values) for row, values in zip(rows, matrix)]
    return "\n".join(lines)


def _sweep_options(sweep):
    _data_options(sweep)
    _parameter(sweep, "learning_rate", _real(0, strict=True), "R,R,...", many=True, default=[0.05, 0.1, 0.5],
               help="learning rates")
    _parameter(sweep, "weight_decay", _real(0), "D,D,...", many=True, help="L2 penalties on W")
    _parameter(sweep, "lr_decay", _real(0), "D,D,...", many=True,
               help="inverse-time decays of the learning rate per epoch")
    sweep.add_argument("--seeds", type=_seeds, default=[0], metavar="A-B|S,S,...",
                       help="seeds of the batch order: a range such as 0-4 (both included) or a list such as 0,3,7")
    length = sweep.add_mutually_exclusive_group()
    length.add_argument("--steps", type=_count(1), metavar="N", help="SGD steps of every model (default: 1000)")
    length.add_argument("--epochs", type=_real(0, strict=True), metavar="E",
                        help="passes over the training split, instead of --steps")
    _parameter(sweep, "batch_size", _count(1), "N")
    sweep.add_argument("--average", nargs="?", const=HALF_OF_THE_RUN, type=_count(0), metavar="N",
                       help="averaged SGD from N samples on; without N, over each run's second half; default: off")
    _parameter(sweep, "backend", None, None, choices=list(BACKENDS), help=BACKEND_HELP)
    _parameter(sweep, "dtype", None, None, choices=[d.name for d in FLOAT_DTYPES])
    sweep.add_argument("--output", type=_path, metavar="DIR",
                       help="directory for the best model (model.npz) and sweep.png; default: write nothing")
    sweep.add_argument("--json", action="store_true", help="print one JSON object (runs, best) instead of text")


BACKEND_HELP = "cpu (Numba), numpy (the reference) or cuda (a GPU, or NUMBA_ENABLE_CUDASIM=1)"


def _parameter(parser, name, kind, metavar, *, many=False, **settings):
    """The option ``--name`` for the estimator's parameter ``name``. Its default, and its help unless
    given, come from the parameter table (:mod:`fastsoftmax.model.parameters`), so that the command
    line and ``SoftmaxRegression`` cannot drift apart. ``many``: a list of values (the sweep's
    axes), by default the table's one default."""
    parameter = BY_NAME[name]
    default = settings.pop("default", [parameter.default] if many else parameter.default)
    settings.setdefault("help", parameter.help)
    if kind is not None:
        settings["type"] = _values(kind) if many else kind
    if metavar is not None:
        settings["metavar"] = metavar
    parser.add_argument("--" + name.replace("_", "-"), default=default, **settings)


def _values(kind):
    """A comma-separated list of ``kind`` values, for the sweep's axes."""
    def parse(text):
        parts = [part.strip() for part in text.split(",")]
        if not all(parts):
            raise argparse.ArgumentTypeError(f"give values separated by commas, got {text!r}")
        return [kind(part) for part in parts]
    return parse


def _seeds(text):
    """``A-B`` (both included) or ``S,S,...``: seeds >= 0."""
    try:
        if "-" in text.strip("-") and "," not in text:
            low, high = (int(part) for part in text.split("-"))
            seeds = list(range(low, high + 1))
        else:
            seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"give seeds as a range A-B or a list S,S,..., got {text!r}") from None
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"seeds must be integers >= 0, at least one, got {text!r}")
    return seeds


def cmd_sweep(args) -> int:
    from .model_selection import sweep

    get_backend(args.backend)
    if args.output:
        _writable("--output", args.output, directory=True)
    data = _load(args, 0)
    train, val, test = data.train, data.validation, data.test
    if not val.num_examples:
        raise InputError(f"dataset {data.name!r} has no validation split to choose the best model on")
    batch = min(args.batch_size, train.num_examples)
    average = args.average
    if average == HALF_OF_THE_RUN:
        average = run_length(args.steps, args.epochs, None, train.num_examples, args.batch_size) * batch // 2
    start = time.perf_counter()
    runs, best, models = sweep(
        train.pixels, train.class_indices, val.pixels, val.class_indices, learning_rate=args.learning_rate,
        weight_decay=args.weight_decay, lr_decay=args.lr_decay, seed=args.seeds, test=(test.pixels, test.class_indices),
        steps=args.steps, epochs=args.epochs, batch_size=args.batch_size, average=_model_average(average),
        backend=args.backend, dtype=args.dtype, progress=bool(sys.stderr.isatty() and not args.json))
    seconds = time.perf_counter() - start
    result = {"dataset": data.name, "backend": args.backend, "dtype": args.dtype, "steps": models[0].steps_done,
              "batch_size": args.batch_size, "models": len(runs), "seconds": round(seconds, 3),
              "runs": runs, "best": {"index": best, **runs[best]}}
    if args.output:
        _output_directory(args.output)
        written = [str(models[best].save(args.output / "model.npz"))]
        try:
            from . import plots
        except ImportError as exc:
            print(f"warning: picture skipped ({exc}); pip install 'fastsoftmax[plot]'", file=sys.stderr)
        else:
            written.append(str(plots.sweep(runs, args.output / "sweep.png", best=best, dataset=data.name)))
        result["outputs"] = written
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"dataset {data.name}, backend {args.backend} ({args.dtype}): {len(runs)} models of {result['steps']} "
          f"steps of {args.batch_size} in one pass, {seconds:.2f} s")
    print(f"  {'learning_rate':>13} {'weight_decay':>12} {'lr_decay':>8} {'seed':>4} {'validation':>10} {'test':>6}")
    for i, run in enumerate(runs):
        print(f"{'*' if i == best else ' '} {run['learning_rate']:>13g} {run['weight_decay']:>12g} "
              f"{run['lr_decay']:>8g} {run['seed']:>4} {run['validation_accuracy']:>10.4f} "
              f"{run['test_accuracy']:>6.4f}")
    print(f"best (*) by validation accuracy: learning rate {runs[best]['learning_rate']:g}, weight decay "
          f"{runs[best]['weight_decay']:g}, lr decay {runs[best]['lr_decay']:g}, seed {runs[best]['seed']}")
    for path in result.get("outputs", []):
        print(f"wrote {path}")
    return 0


def cmd_info(args) -> int:
    import numba

    from .kernels import cpu

    print(f"fastsoftmax {__version__}, python {platform.python_version()}, numpy {np.__version__}, "
          f"numba {numba.__version__}")
    print(f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores; "
          f"numba sees {numba.config.NUMBA_NUM_THREADS} threads, layer {numba.config.THREADING_LAYER}")
    flags = _cpu_flags()
    print("cpu features: " + (", ".join(f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni")
                                        if f in flags) or "unknown"))
    print(f"kernel cache: {'on' if cpu.CACHE else 'off (FASTSOFTMAX_NO_CACHE)'}; numba cache dir "
          f"{numba.config.CACHE_DIR or '(next to the package, or a user cache if read-only)'}")
    print(f"data cache: {cache_root()}")
    print(f"cuda: {_cuda_status()}")
    for name, spec in DATASETS.items():
        dirs = search_dirs(spec)
        found = {part: find_file(spec.file(part), dirs) for part in spec.files}
        where = sorted({str(p.parent) for p in found.values() if p})
        state = "complete" if all(found.values()) else f"{sum(map(bool, found.values()))}/4 files"
        print(f"dataset {name}: {state}" + (f" in {', '.join(where)}" if where else ""))
    return 0


def _cpu_flags() -> set:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _cuda_status() -> str:
    """``GPU <name>``, ``simulated ...`` or ``none: <why>``; never raises."""
    problem = backend_problem("cuda")
    if problem:
        return f"none: {problem}"
    from .kernels import cuda

    try:
        description = cuda.device_description()
    except Exception as exc:  # the driver can fail in many ways; info must still print
        return f"none: the CUDA driver failed ({type(exc).__name__}: {exc})"
    return f"simulated, {description}" if cuda.SIMULATED else f"GPU {description}"


def _writable(option: str, path: Path, directory=False) -> None:
    """Refuse, before a long run, a file (or a directory for files) that could not be written at its
    end; nothing is made yet, so a run that fails before then leaves nothing behind."""
    if directory:
        if is_dir(path):
            if not os.access(path, os.W_OK | os.X_OK):
                raise InputError(f"{option} {path}: cannot write in that directory")
            return
        if os.path.lexists(path):
            raise InputError(f"{option} {path}: is a file, not a directory")
    elif is_dir(path):
        raise InputError(f"{option} {path}: is a directory; give a file name")
    ancestor = path.parent
    while not os.path.lexists(ancestor) and ancestor.parent != ancestor:
        ancestor = ancestor.parent
    if not is_dir(ancestor):
        raise InputError(f"{option} {path}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: cannot write in {ancestor}")


def cmd_bench(args) -> int:
    from .benchmark import compile_times, machine, report

    bench = _bench()
    saved = report.load(args.compare) if args.compare else None  # a bad file fails before the long run
    if args.plot:
        try:
            import matplotlib  # noqa: F401 - only whether it is there; report.plot draws
        except ImportError as exc:
            raise InputError(f"--plot needs matplotlib ({exc}): pip install 'fastsoftmax[plot]', "
                             "or leave out --plot") from None
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        if path is not None:
            _writable(option, path)
    _check_data_dir(args)
    variants = bench.usable_variants()
    if args.variants:
        missing = [n for n in args.variants if n not in {v.name for v in variants}]
        if missing:
            raise InputError(f"variant(s) {', '.join(missing)} cannot run here (a simulated GPU is never timed); "
                             f"usable: {', '.join(v.name for v in variants)}")
        variants = [v for v in variants if v.name in args.variants]
    loads = [w for w in bench.WORKLOADS if (not args.workloads or w.name in args.workloads)
             and not (args.quick and w.heavy)]
    print(f"loading {args.dataset} ...", file=sys.stderr)
    data = bench.Data(_load(args, seed=0))  # missing data fails before the probes
    gpu = next((v for v in variants if v.backend == "cuda"), None)
    print("measuring this machine's limits (float32 matrix product, copy bandwidth) ...", file=sys.stderr)
    info = machine.describe(gpu=_cuda_status() if gpu else None)
    if gpu:
        info["gpu_bandwidth_gbs"] = machine.cuda_copy_gbs()
    if not (args.quick or args.no_compile_times) and any(v.backend == "cpu" for v in variants):
        print("timing the CPU kernels' first calls in fresh processes (cold and warm cache) ...", file=sys.stderr)
        info["compile"] = compile_times.measure()
    print(f"timing {len(loads)} workload(s) on {len(variants)} variant(s), {args.rounds} rounds each ...",
          file=sys.stderr)
    terminal = sys.stderr.isatty()
    results = bench.run(data, loads, variants, rounds=args.rounds, progress=terminal,
                        log=None if terminal else lambda line: print(line, file=sys.stderr, flush=True))
    report.add_shares(results, info)
    print(report.table(results, info))
    settings = {"dataset": data.name, "rounds": args.rounds, "quick": args.quick}
    if args.json:
        print(f"wrote {report.save(args.json, results, info, settings)}")
    if saved:
        print()
        print(report.compare(results, saved))
    if args.plot:
        print(f"wrote {report.plot(args.plot, results, info)}")
    print()
    print(_bench_ending(results, args))
    return 0


def _bench_ending(results: list, args) -> str:
    """What the run says to someone choosing how to run fastsoftmax: the fastest variant of
    each workload, and how to keep and compare the figures."""
    if not results:
        return "nothing was timed: none of the variants chosen runs these workloads here"
    baseline = _bench().BASELINE
    lines = [f"fastest here, and its speed-up over {baseline} (the plain NumPy loop):"]
    for workload in dict.fromkeys(r["workload"] for r in results):
        rows = [r for r in results if r["workload"] == workload]
        best = min(rows, key=lambda r: r["median_s"])
        ratio = f", {best['speedup']:.2f}x" if best.get("speedup") else ""
        lines.append(f"  {best['title']}: {best['variant']} ({1e3 * best['median_s']:.3g} ms{ratio})")
    lines.append("model-* is SoftmaxRegression as you would call it; *-u8 reads uint8 pixels (a split's .pixels), "
                 "*-f32 float32 images.")
    if args.json:
        lines.append(f"a later run with --compare {shlex.quote(str(args.json))} shows what changed.")
    else:
        lines.append("--json FILE keeps these figures; a later run with --compare FILE shows what changed.")
    return "\n".join(lines)
