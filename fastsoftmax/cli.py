"""The ``fastsoftmax`` command line: ``train``, ``evaluate``, ``info``.

The only layer that prints. Library errors become one ``error:`` line and exit
status 1; wrong arguments get argparse's usage message and status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np

from . import __version__
from .data import DATASETS, read_data_sets
from .data.fetch import cache_root, find_file, search_dirs
from .errors import FastSoftmaxError, InputError
from .kernels import BACKENDS, backend_problem, get_backend
from .model import SoftmaxRegression
from .model.parameters import run_length


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastsoftmax", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"fastsoftmax {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train softmax regression (defaults: the TensorFlow tutorial)")
    _data_options(train)
    length = train.add_mutually_exclusive_group()
    length.add_argument("--steps", type=_positive(int), help="SGD steps (default 1000, the tutorial's)")
    length.add_argument("--epochs", type=_positive(float), help="passes over the training split")
    train.add_argument("--batch-size", type=_positive(int), default=100)
    train.add_argument("--learning-rate", type=_positive(float), default=0.5)
    train.add_argument("--lr-decay", type=_nonnegative(float), default=0.0,
                       help="inverse-time decay of the rate per epoch")
    train.add_argument("--weight-decay", type=_nonnegative(float), default=0.0, help="L2 penalty")
    train.add_argument("--average", nargs="?", const=HALF_OF_THE_RUN, type=_nonnegative(int), metavar="N",
                       help="averaged SGD: predict with the mean of the weights after each step once N samples "
                            "have been seen; without N, from half the run's samples (the second half)")
    train.add_argument("--backend", choices=list(BACKENDS), default="cpu",
                       help="cpu (Numba), numpy (the reference) or cuda (a GPU, or NUMBA_ENABLE_CUDASIM=1)")
    train.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--output", type=Path, help="directory for model.npz and pictures")
    train.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    evaluate = sub.add_parser("evaluate", help="accuracy, per-class accuracy and confusion matrix of a model")
    evaluate.add_argument("model", type=Path)
    _data_options(evaluate)
    evaluate.add_argument("--backend", choices=list(BACKENDS),
                          help="kernels to run on (default: the backend the model was trained with)")
    evaluate.add_argument("--json", action="store_true")

    _sweep_parser(sub)

    sub.add_parser("info", help="versions, CPU, threading, cache and datasets found")

    bench = sub.add_parser("bench", help="time the standard workloads on every usable backend")
    _data_options(bench, dataset="fashion-mnist")
    bench.add_argument("--workloads", type=_names(lambda: [w.name for w in _bench().WORKLOADS]),
                       help="comma-separated subset (default: all)")
    bench.add_argument("--variants", type=_names(lambda: [v.name for v in _bench().VARIANTS]),
                       help="comma-separated subset (default: every usable one)")
    bench.add_argument("--quick", action="store_true",
                       help="leave out the heavy workloads (W2, 1M rows) and the compile-time probe")
    bench.add_argument("--no-compile-times", action="store_true",
                       help="leave out the compile-time probe (fresh processes compiling the CPU kernels)")
    bench.add_argument("--rounds", type=_positive(int), default=7, help="rounds per measurement (median taken)")
    bench.add_argument("--json", type=Path, metavar="FILE", help="save the results as JSON")
    bench.add_argument("--compare", type=Path, metavar="FILE", help="show the change against a saved --json run")
    bench.add_argument("--plot", type=Path, metavar="FILE", help="draw speed-ups as a bar chart (PNG)")
    return parser


def _data_options(parser, dataset="mnist"):
    parser.add_argument("--dataset", choices=sorted(DATASETS), default=dataset)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--offline", action="store_true", help="never download")


def _positive(kind):
    def parse(text):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def _bench():
    from . import benchmark

    return benchmark


def _names(known):
    def parse(text):
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in known()]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown) or 'empty list'}; "
                                             f"choose from {', '.join(known())}")
        return names
    return parse


def _nonnegative(kind):
    def parse(text):
        value = kind(text)
        if not value >= 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
        return value
    return parse


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        commands = {"train": cmd_train, "evaluate": cmd_evaluate, "sweep": cmd_sweep, "info": cmd_info,
                    "bench": cmd_bench}
        return commands[args.command](args)
    except FastSoftmaxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _load(args, seed=None):
    return read_data_sets(args.data_dir, dataset=args.dataset, download=not args.offline, seed=seed,
                          progressbar=sys.stderr.isatty())


def cmd_train(args) -> int:
    get_backend(args.backend)  # a backend that cannot run here is refused before any data is loaded
    if args.output:
        _output_directory(args.output)  # and an output that cannot be written, before any training
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
        "batch_size": args.batch_size, "learning_rate": args.learning_rate, "seed": args.seed,
        "average": average,
        "validation_accuracy": model.history["val_accuracy"][-1] if validation else None,
        "test_accuracy": float(np.mean(test_pred == test.class_indices)),
        "final_loss": float(np.mean(model.history["loss"][-100:])),
    }
    timings["evaluate_s"] = time.perf_counter() - start
    result.update({k: round(v, 4) for k, v in timings.items()})

    if args.output:
        result["outputs"] = _write_outputs(args.output, model, test.class_indices, test_pred,
                                           CLASS_NAMES.get(data.name))
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


def _write_outputs(directory: Path, model, labels, predictions, class_names=None) -> list:
    _output_directory(directory)
    written = [str(model.save(directory / "model.npz"))]
    try:
        from . import plots
    except ImportError as exc:
        print(f"warning: pictures skipped ({exc}); pip install 'fastsoftmax[plot]'", file=sys.stderr)
        return written
    written.append(str(plots.weight_images(model.W, directory / "weights.png", class_names=class_names)))
    written.append(str(plots.confusion(confusion_matrix(labels, predictions, model.n_classes),
                                       directory / "confusion.png", class_names=class_names)))
    written.append(str(plots.curves(model.history, directory / "curves.png")))
    return written


def confusion_matrix(labels, predictions, n_classes) -> np.ndarray:
    """``[true, predicted]`` counts, int64 ``[C, C]``."""
    return np.bincount(labels * n_classes + predictions, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _print_summary(r):
    print(f"dataset {r['dataset']}, backend {r['backend']} ({r['dtype']}), {r['steps']} steps of "
          f"{r['batch_size']} at learning rate {r['learning_rate']}"
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
    test = _load(args).test
    predictions = model.predict(test.pixels)
    matrix = confusion_matrix(test.class_indices, predictions, model.n_classes)
    per_class = (np.diag(matrix) / np.maximum(matrix.sum(axis=1), 1)).tolist()
    result = {"model": str(args.model), "dataset": args.dataset,
              "accuracy": float(np.mean(predictions == test.class_indices)),
              "per_class_accuracy": per_class, "confusion_matrix": matrix.tolist()}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.model} on {args.dataset} test: accuracy {result['accuracy']:.4f}")
    names = CLASS_NAMES.get(args.dataset) or [str(c) for c in range(len(per_class))]
    print("per class: " + "  ".join(f"{name}:{a:.3f}" for name, a in zip(names, per_class)))
    print("confusion matrix (rows true, columns predicted):")
    for row in matrix:
        print(" ".join(f"{v:5d}" for v in row))
    return 0


def _sweep_parser(sub):
    sweep = sub.add_parser("sweep", help="train a grid of models in one pass and keep the best on the validation split",
                           description="Train every combination of learning rate, weight decay, learning-rate decay "
                                       "and seed in one compiled pass, measure each on the validation split and the "
                                       "test set, and mark the best by validation accuracy.")
    _data_options(sweep)
    sweep.add_argument("--learning-rate", type=_values(_positive(float)), default=[0.05, 0.1, 0.5], metavar="R,R,...",
                       help="learning rates (default: 0.05,0.1,0.5)")
    sweep.add_argument("--weight-decay", type=_values(_nonnegative(float)), default=[0.0], metavar="D,D,...",
                       help="L2 penalties (default: 0)")
    sweep.add_argument("--lr-decay", type=_values(_nonnegative(float)), default=[0.0], metavar="D,D,...",
                       help="inverse-time learning-rate decays per epoch (default: 0)")
    sweep.add_argument("--seeds", type=_seeds, default=[0], metavar="A-B|S,S,...",
                       help="seeds of the batch order: a range 0-4 or a list 0,3,7 (default: 0)")
    length = sweep.add_mutually_exclusive_group()
    length.add_argument("--steps", type=_positive(int), help="SGD steps of every model (default 1000)")
    length.add_argument("--epochs", type=_positive(float), help="passes over the training split")
    sweep.add_argument("--batch-size", type=_positive(int), default=100, help="rows per SGD step (default: 100)")
    sweep.add_argument("--average", nargs="?", const=HALF_OF_THE_RUN, type=_nonnegative(int), metavar="N",
                       help="averaged SGD from N samples on; without N, over each run's second half")
    sweep.add_argument("--backend", choices=list(BACKENDS), default="cpu", help="kernels to train on (default: cpu)")
    sweep.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                       help="dtype of the weights (default: float32)")
    sweep.add_argument("--output", type=Path, help="directory for the best model (model.npz) and sweep.png")
    sweep.add_argument("--json", action="store_true", help="print one JSON object (runs, best) instead of text")


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
        _output_directory(args.output)
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
              f"{run['lr_decay']:>8g} {run['seed']:>4} {run['validation_accuracy']:>10.4f} {run['test_accuracy']:>6.4f}")
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


def cmd_bench(args) -> int:
    from .benchmark import compile_times, machine, report

    bench = _bench()
    saved = report.load(args.compare) if args.compare else None  # a bad file fails before the long run
    variants = bench.usable_variants()
    if args.variants:
        missing = [n for n in args.variants if n not in {v.name for v in variants}]
        if missing:
            raise InputError(f"variant(s) {', '.join(missing)} cannot run here (a simulated GPU is never timed); "
                             f"usable: {', '.join(v.name for v in variants)}")
        variants = [v for v in variants if v.name in args.variants]
    loads = [w for w in bench.WORKLOADS if (not args.workloads or w.name in args.workloads)
             and not (args.quick and w.heavy)]
    gpu = next((v for v in variants if v.backend == "cuda"), None)
    print("probing this machine's limits ...", file=sys.stderr)
    info = machine.describe(gpu=_cuda_status() if gpu else None)
    if gpu:
        info["gpu_bandwidth_gbs"] = machine.cuda_copy_gbs()
    if not (args.quick or args.no_compile_times) and any(v.backend == "cpu" for v in variants):
        print("timing the CPU kernels' first calls in fresh processes (cold and warm cache) ...", file=sys.stderr)
        info["compile"] = compile_times.measure()
    data = bench.Data(_load(args, seed=0))
    results = bench.run(data, loads, variants, rounds=args.rounds,
                        log=lambda m: print(m, file=sys.stderr) if sys.stderr.isatty() else None)
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
    return 0
