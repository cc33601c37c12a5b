"""Ray builds: chunks compressed as Ray tasks on a local cluster give the single-process index."""

import sys

import numpy as np
import pytest

from gingham.build.streaming import build
from streamhelpers import CHUNK_TOKENS, OPTIONS, assert_same_index, source


def test_missing_ray_says_what_to_install(monkeypatch):
    import gingham.build.distributed as dist

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'gingham\[ray\]'"):
        dist.build("unused", [])


def test_ray_build_equals_single_process_build(ray_cluster, small_corpus, tmp_path):
    import gingham.build.distributed as dist

    local = build(tmp_path / "local", source(small_corpus), chunk_tokens=CHUNK_TOKENS, show_progress=False,
                  **OPTIONS)
    on_ray = dist.build(tmp_path / "ray", source(small_corpus), chunk_tokens=CHUNK_TOKENS, show_progress=False,
                        **OPTIONS)
    assert on_ray.manifest["build"]["state"] == "finished"
    assert on_ray.manifest["build"]["chunks_done"] == local.manifest["build"]["chunks_done"] > 2
    assert not (tmp_path / "ray.ray-staging").exists()
    assert_same_index(on_ray, local)
    queries = [small_corpus.doc(i)[:8] for i in (1, 99, 777, 1234)]
    a, b = on_ray.search(queries, 10), local.search(queries, 10)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.scores, b.scores)
