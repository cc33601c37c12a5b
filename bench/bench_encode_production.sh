#!/usr/bin/env bash
# Every run of docs/benchmarks/encode-production, in order, each under ~2 minutes on 2 cores (issue 29).
# Run it alone on the machine; each result records lscpu's model name, the flags of interest and the load average.
#
#   bench/bench_encode_production.sh [OUT]        # default OUT: bench/out/encode-production
#
# Needs the encoder, bench and onnx extras. The first run builds the production-size architectures (random
# weights, ~1 GB under ~/.cache/gingham-bench) and exports their ONNX graphs (~3 GB under ~/.cache/gingham/onnx).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-bench/out/encode-production}"
PY="${PYTHON:-python}"
P="float32,int8,bfloat16,onnx-float32,onnx-int8"
mkdir -p "$OUT"
run() { echo "== $*"; "$PY" "$@" 2>&1 | grep -v -e "Loading weights" -e "torch.onnx" -e torchvision; }

run bench/colbert_architectures.py
# where a user's time goes, per model: one query (tokenise + encode + search), batch-32, documents by length
for m in lfm2-colbert-350m gte-moderncolbert-v1 multilingual-e5-small; do
  run bench/bench_encode_paths.py --model "$m" --paths "$P" --what queries --rounds 2 --n-single 5 --out "$OUT/$m-queries"
  run bench/bench_encode_paths.py --model "$m" --paths "$P" --what documents --rounds 2 --n-docs 4 \
      --doc-lengths 128,512 --out "$OUT/$m-documents"
done
# the same kernels limited to AVX2 (an AVX2-only CPU's oneDNN / ATen / MKL code paths; ONNX Runtime ignores these)
export_avx2() { ONEDNN_MAX_CPU_ISA=AVX2 DNNL_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 "$@"; }
echo "== AVX2 limits"; export_avx2 "$PY" bench/bench_encode_paths.py --model lfm2-colbert-350m --paths float32,int8,bfloat16 \
    --what queries,documents --rounds 2 --n-single 4 --n-docs 4 --doc-lengths 128,512 --out "$OUT/lfm2-avx2" 2>&1 \
    | grep -v "Loading weights"
# threads for one query, bucketing, the seeds-claim sweep (fastest path of each model beside float32)
run bench/bench_encode_paths.py --model lfm2-colbert-350m --paths onnx-int8 --what threads --thread-counts 1,2 \
    --n-single 8 --out "$OUT/lfm2-threads"
run bench/bench_encode_paths.py --model lfm2-colbert-350m --paths float32,int8 --what bucketing --n-docs 8 \
    --out "$OUT/lfm2-bucketing"
run bench/bench_encode_paths.py --model lfm2-colbert-350m --paths float32,onnx-int8 --what sweep \
    --sweep-batches 1,4,16,32 --sweep-max-docs 8 --out "$OUT/lfm2-sweep"
run bench/bench_encode_paths.py --model gte-moderncolbert-v1 --paths float32,onnx-int8 --what sweep \
    --sweep-batches 1,4,16,32 --sweep-max-docs 8 --out "$OUT/gte-sweep"
run bench/plot_seeds_claim.py "$OUT/seeds-claim.png" "$OUT/lfm2-sweep/results.json" "$OUT/gte-sweep/results.json"
# what the hardware gives: matmul peaks, bandwidth, the forward's profile
run bench/bench_matmul_peak.py --out "$OUT/matmul-peak"
# the server under concurrent clients
run bench/bench_server_batching.py --model multilingual-e5-small --clients 1,4,16 --requests 96 --out "$OUT/server-e5"
run bench/bench_server_batching.py --model lfm2-colbert-350m --dtype int8 --clients 1,8 --requests 32 \
    --out "$OUT/server-lfm2-int8"
