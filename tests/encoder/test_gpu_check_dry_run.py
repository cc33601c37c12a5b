"""bench/bench_gpu_check.sh passes its CPU dry run: every step of the GPU check (model build, fp32 and bf16 encodes at
several batch sizes and lengths, an index from texts, the JSON and the plot) runs, shrunk, on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

pytestmark = [pytest.mark.encoder, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_dry_run(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path / "out"), PYTHON=sys.executable, GINGHAM_GPU_CHECK_DRY_RUN="1")
    proc = subprocess.run(["bash", str(ROOT / "bench" / "bench_gpu_check.sh")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert result["dry_run"] and set(result["runs"]) == {"float32", "bfloat16"}
    for run in result["runs"].values():
        assert all(v > 0 for v in run["queries_per_s"].values())
        assert all(v > 0 for v in run["documents_tokens_per_s"].values())
    assert result["runs"]["bfloat16"]["max_abs_diff_vs_float32"] < 0.1
    assert result["index_from_texts"]["n_docs"] == 40 and result["index_from_texts"]["search_rows"] == 4
    assert (tmp_path / "out" / "gpu_check.png").stat().st_size > 0
