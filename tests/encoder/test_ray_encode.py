"""Text builds on Ray: a JSONL corpus encoded and compressed on the actors of a local Ray cluster (tiny model)
gives the local streaming build's index, array for array; an interrupted Ray build resumes."""

import json
import os

import numpy as np
import pytest

from gingham import Index
from gingham.build.streaming import TextSource, build
from tests.encoder.conftest import CORPUS

pytestmark = pytest.mark.encoder

OPTIONS = dict(n_centroids=16, seed=4, calibrate=False, sample_tokens=300, memory_budget_mb=256)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(1)
    words = " ".join(CORPUS).split()
    rows = [{"_id": f"p{i}", "text": " ".join(rng.choice(words, int(rng.integers(3, 20))))} for i in range(40)]
    rows[5]["title"] = "a title"
    for i in range(8, 40):  # metadata as fields and in a "metadata" object; rows 0-7 (two groups) have none
        if i % 3:
            rows[i]["lang"] = "de" if i % 2 else "en"
        if i % 5 == 0:
            rows[i]["metadata"] = {"year": 2000 + i}
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows[:20]) + "\n\n" + "\n".join(json.dumps(r) for r in rows[20:]))
    return path, rows


def arrays(index):
    seg = index._snap.segments[0].arrays
    out = {k: np.asarray(getattr(seg, k)) for k in ("centroids", "fine", "scales", "codes", "residuals", "doc_offsets",
                                                     "ivf_docs", "ivf_offsets")}
    out["ids"] = index.ids()
    out["texts"] = [index.text(i) for i in index.ids()]
    out["metadata"] = [index.metadata(i) for i in index.ids()]
    return out


def assert_same(a, b):
    x, y = arrays(a), arrays(b)
    for key in x:
        if key in ("ids", "texts", "metadata"):
            assert x[key] == y[key], key
        else:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


@pytest.fixture(scope="module")
def local(bert_pylate, corpus_file, tmp_path_factory):
    """The local streaming build of the corpus, with torch on one thread as each actor (1 CPU) runs: float results
    can depend on the thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return build(tmp_path_factory.mktemp("local") / "ix", TextSource(corpus_file[0], model=str(bert_pylate),
                                                                          encode_docs=4),
                     chunk_tokens=150, show_progress=False, **OPTIONS)
    finally:
        torch.set_num_threads(before)


def test_ray_text_build_encodes_on_workers_and_equals_local(ray_cluster, bert_pylate, corpus_file, local, tmp_path):
    import gingham.build.distributed as dist

    path, rows = corpus_file
    on_ray = dist.build(tmp_path / "ray", TextSource(path, model=str(bert_pylate), encode_docs=4), concurrency=2,
                        show_progress=False, **OPTIONS)
    state = on_ray.manifest["build"]
    assert state["state"] == "finished" and state["docs_done"] == 40
    pids = {int(w.rsplit(":", 1)[1]) for w in state["ray_workers"]}
    assert pids and os.getpid() not in pids  # encoded and compressed in Ray's worker processes
    assert on_ray.ids() == [r["_id"] for r in rows] and on_ray.text("p5") == "a title " + rows[5]["text"]
    # the JSONL's metadata, as the local build and `gingham index` keep it (issue 27: the Ray build kept none)
    assert on_ray.metadata("p3") is None and on_ray.metadata("p10") == {"lang": "en", "year": 2010}
    de = sorted(r["_id"] for r in rows if r.get("lang") == "de")
    hits = on_ray.search(np.ones((2, on_ray.dim), np.float32), 40, where="lang = ?", params=["de"])
    assert sorted(i for i in hits.ids[0] if i is not None) == de
    assert_same(on_ray, local)


def test_interrupted_ray_text_build_resumes(ray_cluster, bert_pylate, corpus_file, local, tmp_path, monkeypatch):
    import gingham.build.distributed as dist
    import gingham.build.ray_encode as re

    src = TextSource(corpus_file[0], model=str(bert_pylate), encode_docs=4)
    real = re.next_segment
    calls = {"n": 0}

    def crash_after_three(manifest):
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("crash")
        return real(manifest)

    monkeypatch.setattr(re, "next_segment", crash_after_three)
    with pytest.raises(RuntimeError, match="crash"):
        dist.build(tmp_path / "ix", src, concurrency=1, show_progress=False, **OPTIONS)
    monkeypatch.setattr(re, "next_segment", real)
    half = Index.open(tmp_path / "ix")
    assert half.manifest["build"]["state"] == "running" and half.manifest["build"]["docs_done"] == 12
    resumed = dist.build(tmp_path / "ix", src, concurrency=1, show_progress=False, **OPTIONS)
    assert resumed.manifest["build"]["state"] == "finished"
    assert_same(resumed, local)
