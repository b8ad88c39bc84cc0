#!/usr/bin/env bash
# Builds, on a development machine, what bench/gpu_check.py needs on a GPU machine that lacks it, in
# two folders git ignores (listed in .git/info/exclude):
#
#   .whl/      pure-Python wheels of the packages fastsoftmax needs and the GPU image does not have
#              (pooch and platformdirs; $GPU_WHEELS lists them as pip requirements)
#   .gpudata/  the real data: MNIST's test files (../shared/data/mnist, or $FASTSOFTMAX_TEST_MNIST)
#              and Fashion-MNIST (/usr/share/datasets/fashion-mnist, Debian's dataset-fashion-mnist)
#
# Both travel with the working tree when named in the GPU run's carry list (about 32 MB of the
# 64 MiB allowed). Usage, from anywhere in the checkout:  bench/gpu_prepare.sh
#
# The wheels come from the package index through pip. Without network the wheels already in .whl/
# are kept (a failed download never removes them), and the script stops only when one is missing.
set -euo pipefail

root=$(git rev-parse --show-toplevel)
cd "$root"
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
touch "$exclude"
for folder in /.whl/ /.gpudata/; do
    grep -qxF "$folder" "$exclude" || echo "$folder" >>"$exclude"
done

fail() {
    echo "bench/gpu_prepare.sh: $*" >&2
    exit 1
}

# ---------------------------------------------------------------- wheels
GPU_WHEELS=${GPU_WHEELS:-"pooch==1.9.0 platformdirs==4.14.8"}
mkdir -p .whl
wanted=()    # requirements whose pinned wheel .whl/ lacks
for spec in $GPU_WHEELS; do
    name=${spec%%=*}
    version=${spec#*==}
    ls .whl/"$name-$version"-*-none-any.whl >/dev/null 2>&1 || wanted+=("$spec")
done
if [ ${#wanted[@]} -gt 0 ]; then
    download=$(mktemp -d)
    trap 'rm -rf "$download"' EXIT
    # Pure-Python wheels, for the GPU image's Python 3.12; into a folder of their own, so that a
    # download that fails half-way leaves .whl/ as it was.
    if python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        -d "$download" "${wanted[@]}" >"$download/pip.log" 2>&1; then
        for wheel in "$download"/*.whl; do
            name=$(basename "$wheel" | cut -d- -f1)
            rm -f .whl/"$name"-*.whl    # one version of each: the newest wins on the GPU, keep it plain
            mv "$wheel" .whl/
        done
    else
        why=$(grep -v '^\s*$' "$download/pip.log" | tail -n 1)
        kept=()
        for spec in "${wanted[@]}"; do
            name=${spec%%=*}
            found=$(ls .whl/"$name"-*-none-any.whl 2>/dev/null | tail -n 1 || true)
            [ -n "$found" ] || fail "cannot download ${wanted[*]} (pip: ${why:-no message}), and .whl/ has no" \
                "$name wheel to fall back on. Without network, copy pure-Python (py3-none-any) wheels of" \
                "${wanted[*]} into $root/.whl/ (from a machine with network: pip download --no-deps" \
                "--only-binary=:all: ${wanted[*]}) and run this again."
            kept+=("$(basename "$found")")
        done
        echo "bench/gpu_prepare.sh: cannot download ${wanted[*]} (pip: ${why:-no message});" \
            "using the wheels .whl/ already holds: ${kept[*]}" >&2
    fi
fi

# ---------------------------------------------------------------- data
mnist=${FASTSOFTMAX_TEST_MNIST:-$root/../shared/data/mnist}
fashion=/usr/share/datasets/fashion-mnist
mnist_files=(t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)
fashion_files=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz
    t10k-labels-idx1-ubyte.gz)
for f in "${mnist_files[@]}"; do
    [ -f "$mnist/$f" ] || fail "$mnist/$f is missing: set FASTSOFTMAX_TEST_MNIST to a folder holding MNIST's" \
        "t10k files (see ../shared/data/mnist/README.md)"
done
for f in "${fashion_files[@]}"; do
    [ -f "$fashion/$f" ] || fail "$fashion/$f is missing: apt-get install dataset-fashion-mnist"
done
mkdir -p .gpudata/mnist .gpudata/fashion-mnist
for f in "${mnist_files[@]}"; do cp -f "$mnist/$f" .gpudata/mnist/; done
for f in "${fashion_files[@]}"; do cp -f "$fashion/$f" .gpudata/fashion-mnist/; done
chmod -R u+w .gpudata

ls -l .whl
du -sh .whl .gpudata
for path in .whl .gpudata; do
    git check-ignore -q "$path" || fail "git does not ignore $path"
done
echo "ready: check it here with  python3 bench/gpu_check.py --dry-run --out /tmp/gpu-check"
echo "then on the GPU machine: carry [\".whl\", \".gpudata\"], run  python3 bench/gpu_check.py  (limit 6 min)"
