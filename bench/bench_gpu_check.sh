#!/usr/bin/env bash
# The GPU path, checked on a GPU machine in at most 8 minutes (issue 29, item 5): LFM2-ColBERT-350M's architecture
# encoding on CUDA (float32, bfloat16; queries at batch sizes 1-256; documents by length) and an index built from
# texts there. Writes $OUT/gpu_check.json and $OUT/gpu_check.png (OUT defaults to ./gpu-check-out).
#
#   bench/bench_gpu_check.sh              # on a machine with a CUDA GPU and a CUDA torch
#   bench/bench_gpu_check.sh --dry-run    # the same steps shrunk, on the CPU (CI; well under a minute)
#   GINGHAM_GPU_CHECK_DRY_RUN=1 bench/bench_gpu_check.sh
#
# Installs nothing but the project itself (pip install --no-deps -e . when gingham does not import): torch,
# transformers, tokenizers, safetensors (and matplotlib for the plot) must already be there.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu-check-out}"
PY="${PYTHON:-python}"
args=()
if [[ "${GINGHAM_GPU_CHECK_DRY_RUN:-0}" == "1" ]]; then args+=(--dry-run); fi
for a in "$@"; do args+=("$a"); done

if ! "$PY" -c "import gingham" 2>/dev/null; then
  "$PY" -m pip install --no-deps --quiet -e .
fi
"$PY" - <<'EOF'
import importlib, sys
missing = [m for m in ("torch", "transformers", "tokenizers", "safetensors") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"gpu_check: missing {missing}; this check installs only the project: install them first")
EOF
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia-smi.csv" 2>/dev/null || true
lscpu > "$OUT/lscpu.txt" 2>/dev/null || true
exec timeout 480 "$PY" bench/bench_gpu_check.py --out "$OUT" "${args[@]}"
