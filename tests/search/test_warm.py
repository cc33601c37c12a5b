"""`gingham warmup` compiles what a search of an opened index runs, so the first query of a later process loads
kernels from numba's cache instead of compiling them (an opened index's arrays are read-only memory maps, which
numba compiles apart from writable arrays); and a search with embeddings never imports torch or transformers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import gingham
from tests.conftest import normalised

PROBE = """
import json, sys
import numpy as np
import gingham
from gingham.kernels.warmup import dispatchers

rng = np.random.default_rng(1)
for path in sys.argv[1:]:
    ix = gingham.Index.open(path)
    q = rng.standard_normal((8, ix.dim)).astype(np.float32)
    ix.search(q, 5)                                   # one query, split over threads
    ix.search([q, q[:5]], 5)                          # a batch
    ix.search(q, 5, exhaustive=True)
    ix.search(q, 5, subset=ix.ids()[:10])
    ix.rerank(q, [ix.ids()[:7]])
    ix.decompress(ix.ids()[0])
misses = {d.py_func.__name__: sum(d.stats.cache_misses.values()) for d in dispatchers()}
print(json.dumps({"misses": {k: v for k, v in misses.items() if v},
                  "heavy": [m for m in ("torch", "transformers") if m in sys.modules]}))
"""


FOR_THESE = """
import json, sys
import gingham
from gingham.kernels import compress_residuals
from gingham.search.warm import compile_kernels

compiled = compile_kernels(False, [gingham.Index.open(p) for p in sys.argv[1:]])
print(json.dumps({"compiled": compiled, "compressor": len(compress_residuals.signatures)}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", ["gingham warmup", "only what these indexes' searches run"])
def test_after_warmup_a_search_of_an_opened_index_compiles_nothing(tmp_path, how):
    rng = np.random.default_rng(0)
    paths = []
    for nbits, n_centroids in ((2, 64), (4, 512)):  # uint8 and uint16 codes
        docs = [normalised(rng, int(n), 16) for n in rng.integers(20, 40, 60)]
        path = tmp_path / f"ix{nbits}"
        gingham.Index.create(path, docs, list(range(60)), nbits=nbits, n_centroids=n_centroids, calibrate=False)
        paths.append(str(path))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    if how == "gingham warmup":
        warm = subprocess.run([sys.executable, "-c", "from gingham.kernels import warmup; warmup()"], env=env,
                              capture_output=True, text=True, timeout=1200)
    else:  # what `gingham search` and `gingham serve` do on a cold cache
        warm = subprocess.run([sys.executable, "-c", FOR_THESE, *paths], env=env, capture_output=True, text=True,
                              timeout=1200)
        assert warm.returncode == 0, warm.stderr[-3000:]
        assert json.loads(warm.stdout.strip().splitlines()[-1]) == {"compiled": True, "compressor": 0}
        # the next process finds the cache warm for its search: no second compile, no progress bar
        again = subprocess.run([sys.executable, "-c", FOR_THESE, *paths], env=env, capture_output=True, text=True,
                               timeout=1200)
        assert json.loads(again.stdout.strip().splitlines()[-1]) == {"compiled": False, "compressor": 0}
        assert "compiling" not in again.stderr
    assert warm.returncode == 0, warm.stderr[-3000:]
    proc = subprocess.run([sys.executable, "-c", PROBE, *paths], env=env, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["misses"] == {}, f"compiled on first search despite warmup: {out['misses']}"
    assert out["heavy"] == [], f"a search with embeddings imported {out['heavy']}"
