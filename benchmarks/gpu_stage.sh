#!/usr/bin/env bash
# Prepare, on this machine, what a GPU visit carries (each call's working tree is at most 64 MiB):
#
#   bash benchmarks/gpu_stage.sh [MIRROR] [OUT]      (defaults: ../shared/data and .gpu; add /.gpu/ to .git/info/exclude)
#
# OUT/a     the CIFAR-10 training set and the ConvNetJS images (~59 MiB): a first call copies it to /tmp/xdata
# OUT/b     the CIFAR-10 test set, the ImageNet samples and the weights (~60 MiB; BENCH_WEIGHTS=1 adds
#           ResNet-32/44/56 for the benchmark's depth sweep, ~8 MiB more: then leave the ConvNetJS images in a)
# OUT/whl   wheels of zennit and captum at the versions this checkout's .venv resolved (the GPU image lacks
#           them; zennit 1.0 differs from 0.5.1 in its batch-norm merge)
# A visit is then two calls, the second within the machine's 30 s warm window:
#   carry [".gpu/a"]:            mkdir -p /tmp/xdata && cp -r .gpu/a/data/. /tmp/xdata/
#   carry [".gpu/b", ".gpu/whl"]: cp -r .gpu/b/data/. /tmp/xdata/; RESULTS_TO=$OUT/r PARALLEL=1 TAB=0
#       bash benchmarks/gpu_run.sh .gpu/whl /tmp/xdata 560 2>&1 | tee $OUT/run.log
#   (the results come back under $OUT/r, the unfinished chapter records continued: at most 8 files)
set -euo pipefail
cd "$(dirname "$0")/.."
M=${1:-../shared/data}
O=${2:-.gpu}
rm -rf "$O/a" "$O/b" "$O/whl"
mkdir -p "$O/a/data/cifar10" "$O/b/data/cifar10" "$O/b/data/weights" "$O/whl"
cp "$M/cifar10/cifar10-train-jpeg-q75.zip" "$O/a/data/cifar10/"
cp -r "$M/cifar10/convnetjs-data_batch_1-first4000" "$O/a/data/cifar10/"
cp "$M/cifar10/cifar10-test-jpeg-q75.zip" "$O/b/data/cifar10/"
cp -r "$M/imagenet-samples" "$O/b/data/"
cp "$M/weights/mobilenet_v2_dequantized_float.pth" "$M/weights/resnet20-12fca82f.th" "$O/b/data/weights/"
if [ "${BENCH_WEIGHTS:-0}" = 1 ]; then cp "$M"/weights/resnet{32,44,56}-*.th "$O/b/data/weights/"; fi
chmod -R u+w "$O"
PY=.venv/bin/python
pins=$($PY -c "import importlib.metadata as m; print(' '.join(f'{p}=={m.version(p)}' for p in ('zennit', 'captum')))")
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 -d "$O/whl" $pins
du -sb "$O"/a "$O"/b "$O"/whl | awk '{printf "%-10s %6.2f MiB\n", $2, $1 / 1048576}'
