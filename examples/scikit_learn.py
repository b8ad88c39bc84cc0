"""SoftmaxRegression among scikit-learn's tools: a grid search over the learning rate, a pipeline,
and partial_fit streaming a training set from a memory-mapped file one chunk at a time.

Run: python examples/scikit_learn.py [--dataset fashion-mnist|mnist]
Needs scikit-learn: pip install "fastsoftmax[sklearn]" (or pip install scikit-learn).
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

try:
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
except ModuleNotFoundError as exc:
    if not (exc.name or "").startswith("sklearn"):
        raise  # scikit-learn is there but broken: its own traceback says why
    sys.exit('this example needs scikit-learn: pip install "fastsoftmax[sklearn]" (or pip install scikit-learn)')

import fastsoftmax

parser = argparse.ArgumentParser()
parser.add_argument("--data_dir", default=None)
parser.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "mnist"])
FLAGS = parser.parse_args()

try:
    data = fastsoftmax.read_data_sets(FLAGS.data_dir, dataset=FLAGS.dataset)
except fastsoftmax.DataNotFoundError as exc:
    sys.exit(f"{exc}\n\nthis example: give --data_dir DIR with the files, or another --dataset")
X, y = data.train.pixels, data.train.class_indices
X_test, y_test = data.test.pixels, data.test.class_indices

# A grid search over the learning rate on 10,000 rows (3-fold cross-validation), averaged SGD.
search = GridSearchCV(fastsoftmax.SoftmaxRegression(steps=500, average=25000),
                      {"learning_rate": [0.05, 0.2, 0.5]}, cv=3)
search.fit(X[:10000], y[:10000])
print(f"grid search: best {search.best_params_}, test accuracy {search.score(X_test, y_test):.4f}")

# Standardised features in a pipeline (floats, used as given).
pipeline = make_pipeline(StandardScaler(), fastsoftmax.SoftmaxRegression(learning_rate=0.01, epochs=2))
pipeline.fit(X.astype(np.float32), y)
print(f"pipeline: test accuracy {pipeline.score(X_test.astype(np.float32), y_test):.4f}")

# Data larger than memory: partial_fit on consecutive slices of a memory-mapped file.
with tempfile.TemporaryDirectory() as folder:
    np.save(Path(folder) / "X.npy", X)
    stored = np.load(Path(folder) / "X.npy", mmap_mode="r")
    model = fastsoftmax.SoftmaxRegression(average=True)
    for epoch in range(2):
        for start in range(0, len(stored), 5000):
            model.partial_fit(stored[start:start + 5000], y[start:start + 5000], classes=np.arange(10))
    print(f"partial_fit: {model.n_iter_} steps, test accuracy {model.score(X_test, y_test):.4f}")
