#!/usr/bin/env bash
# Build GenEval's official detector stack (mmdet 2.28.2 on mmcv-full 1.7.2 with its CPU ops) into a
# virtual environment, the way that works on a current machine (docs/GENEVAL.md, JUDGES.md):
#   - pip cannot build mmcv-full in an isolated env (its setup.py imports pkg_resources, gone from
#     setuptools >= 70), so setuptools < 70, wheel and torch go in first and the build runs with
#     --no-build-isolation; a PIP_CONSTRAINT on setuptools instead "succeeds" with a wheel without ops;
#   - torch >= 2.6 headers need C++20, and mmcv's setup.py asks for C++14/17: patched here;
#   - 12 minutes on 2 idle CPU cores (24-37 while other jobs ran); the wheel is kept in WHEEL_DIR and reused.
# Usage: bash benchmarks/geneval/judges/build_mmdet.sh VENV [WHEEL_DIR]
# Then VENV/bin/python can run mmdet (e.g. the parity fixtures' make_fixtures.py). The harness's
# `mmdet-mask2former` plugin needs the same two packages in the harness's own environment.
set -euo pipefail
VENV=${1:?usage: build_mmdet.sh VENV [WHEEL_DIR]}
WHEELS=${2:-$VENV/mmcv-wheels}
HERE=$(cd "$(dirname "$0")" && pwd)
REQUIREMENTS="$HERE/../../../tests/fixtures/geneval_mask2former_official/requirements-official.txt"
PYTHON=${PYTHON:-python3}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q -r "$REQUIREMENTS"
$PIP install -q "setuptools<70"          # torch pulls a newer one; mmcv's setup.py needs pkg_resources
if ! ls "$WHEELS"/mmcv_full-1.7.2-*.whl >/dev/null 2>&1; then
    mkdir -p "$WHEELS"
    SRC=$(mktemp -d)
    $PIP download -q --no-deps --no-binary :all: -d "$SRC" mmcv-full==1.7.2
    tar -xzf "$SRC"/mmcv-full-1.7.2.tar.gz -C "$SRC"
    sed -i 's/-std=c++14/-std=c++20/g; s/-std=c++17/-std=c++20/g' "$SRC"/mmcv-full-1.7.2/setup.py
    echo "building mmcv-full 1.7.2 with its CPU ops (12-40 minutes on 2 cores) ..."
    (cd "$SRC"/mmcv-full-1.7.2 && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} \
        "$VENV/bin/python" -m pip wheel -q --no-build-isolation --no-deps -w "$WHEELS" .)
    rm -rf "$SRC"
fi
$PIP install -q --no-deps "$WHEELS"/mmcv_full-1.7.2-*.whl
$PIP install -q mmdet==2.28.2
"$VENV/bin/python" -c "import mmcv, mmdet; from mmcv.ops import MultiScaleDeformableAttention; print('mmcv', mmcv.__version__, 'mmdet', mmdet.__version__, 'with ops')"
