#!/usr/bin/env bash
# Builds, on a development machine, what bench/gpu_check.py needs on a GPU machine that
# lacks it, in two folders git ignores (listed in .git/info/exclude):
#
#   .whl/      wheels of the Python packages fastsoftmax needs and the GPU image does not have
#              (pooch and platformdirs, pure Python; Python 3.12 there)
#   .gpudata/  the real data: MNIST's test files (../shared/data/mnist, or $FASTSOFTMAX_TEST_MNIST)
#              and Fashion-MNIST (/usr/share/datasets/fashion-mnist, Debian's dataset-fashion-mnist)
#
# Both travel with the working tree when named in the GPU run's carry list (64 MiB in all; these
# are about 35 MB). Usage: bench/gpu_prepare.sh   (from anywhere in the checkout; needs pip and
# network access to PyPI for the wheels, unless .whl/ already holds them)
set -euo pipefail

root=$(git rev-parse --show-toplevel)
cd "$root"
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
touch "$exclude"
for folder in /.whl/ /.gpudata/; do
    grep -qxF "$folder" "$exclude" || echo "$folder" >>"$exclude"
done

POOCH=${POOCH_VERSION:-1.9.0}
PLATFORMDIRS=${PLATFORMDIRS_VERSION:-4.14.8}
mkdir -p .whl
if ! ls .whl/pooch-"$POOCH"-*.whl .whl/platformdirs-"$PLATFORMDIRS"-*.whl >/dev/null 2>&1; then
    rm -f .whl/pooch-*.whl .whl/platformdirs-*.whl  # one version of each, or the install stops
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "pooch==$POOCH" "platformdirs==$PLATFORMDIRS"
fi

mnist=${FASTSOFTMAX_TEST_MNIST:-$root/../shared/data/mnist}
fashion=/usr/share/datasets/fashion-mnist
mkdir -p .gpudata/mnist .gpudata/fashion-mnist
for f in t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
    cp -f "$mnist/$f" .gpudata/mnist/
done
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
    cp -f "$fashion/$f" .gpudata/fashion-mnist/
done
chmod -R u+w .gpudata

ls -l .whl
du -sh .whl .gpudata
for path in .whl .gpudata; do
    git check-ignore -q "$path" || { echo "git does not ignore $path" >&2; exit 1; }
done
echo "ready: carry [\".whl\", \".gpudata\"] and run: python3 bench/gpu_check.py (see CONTRIBUTING.md)"
