import json

import pytest

from evalhelpers import write_beir
from gingham.evaluation import load_beir, run_eval


def test_run_eval_beir_with_cache(tmp_path, word_encoder):
    task = load_beir(write_beir(tmp_path / "b"))
    out = tmp_path / "out"
    res = run_eval([task], out, model="words", nbits=(2,), top_k=8, encoder=word_encoder,
                   metrics=("nDCG@10", "RR@10", "R@10", "AP"))
    t = res["tasks"][task.name]
    assert set(t["engines"]) == {"exact", "gingham-nbits2", "ceiling-nbits2"}
    # the word encoder matches query words exactly: each query's graded-2 / only relevant doc ranks first
    assert t["engines"]["exact"]["RR@10"] == pytest.approx(1.0)
    assert 0.0 <= t["engines"]["gingham-nbits2"]["recall@10_vs_exact"] <= 1.0
    for name in ("results.json", "summary.md", "heatmap.png"):
        assert (out / name).stat().st_size > 0
    assert json.loads((out / "results.json").read_text())["kind"] == "eval"
    assert "nDCG@10" in (out / "summary.md").read_text()
    calls = word_encoder.calls
    run_eval([task], out, model="words", nbits=(4,), top_k=8, encoder=word_encoder, plots=False)
    assert word_encoder.calls == calls  # second run (another nbits) reuses the cached encodings


def test_only_measured_metrics_and_a_codec_ceiling(tmp_path, word_encoder):
    """A top-5 run over 8 documents reports no nDCG@10 / R@100 / AP@100 (they would be cut at 5 and mislabelled),
    and each nbits has a
    ceiling engine (exhaustive over the decompressed index) at least as close to exact as the search."""
    task = load_beir(write_beir(tmp_path / "b"))
    res = run_eval([task], tmp_path / "out", model="words", nbits=(2,), top_k=5, encoder=word_encoder,
                   metrics=("nDCG@10", "RR@5", "R@100", "AP@100", "AP"))
    assert res["metrics"] == ["RR@5", "AP"] and res["metrics_not_measured"] == ["nDCG@10", "R@100", "AP@100"]
    engines = res["tasks"][task.name]["engines"]
    assert set(engines) == {"exact", "gingham-nbits2", "ceiling-nbits2"}
    assert set(engines["ceiling-nbits2"]) >= {"RR@5", "AP", "recall@10_vs_exact"}
    assert engines["ceiling-nbits2"]["recall@10_vs_exact"] >= engines["gingham-nbits2"]["recall@10_vs_exact"] - 1e-9
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "ceiling-nbits2" in summary and "Not reported: nDCG@10, R@100, AP@100" in summary
    assert (tmp_path / "out" / "recall.png").stat().st_size > 0
    with pytest.raises(ValueError, match="cutoff <= top_k"):
        run_eval([task], tmp_path / "o2", model="words", nbits=(2,), top_k=5, encoder=word_encoder,
                 metrics=("R@100",))


def test_limit_queries_is_a_seeded_sample_spread_over_documents():
    from gingham.evaluation.data import _judged

    # 30 questions, the first 10 about one paragraph (XQuAD's layout), then 5 paragraphs with 4 each
    qids = [f"q{i}" for i in range(30)]
    docs = ["p0"] * 10 + [f"p{1 + i // 4}" for i in range(20)]
    qrels = {q: {d: 1} for q, d in zip(qids, docs)}
    ids, texts, rel = _judged(qids, [f"text {q}" for q in qids], qrels, 6)
    assert len(ids) == 6 and len({next(iter(qrels[q])) for q in ids}) == 6  # six questions, six paragraphs
    assert ids == sorted(ids, key=qids.index) and texts == [f"text {q}" for q in ids]
    assert _judged(qids, qids, qrels, 6)[0] == ids  # seeded: the same sample every time
    assert _judged(qids, qids, qrels, 100)[0] == qids  # a limit beyond the set keeps every judged query
    with pytest.raises(ValueError, match="positive integer"):
        _judged(qids, qids, qrels, 0)


def test_xquad_modes_use_the_languages_present(tmp_path):
    from gingham.evaluation import load_xquad

    root = tmp_path / "xq"
    root.mkdir()
    (root / "corpus.jsonl").write_text('{"_id": "p0", "text": "a paragraph"}\n', encoding="utf-8")
    (root / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq0\tp0\t1\n", encoding="utf-8")
    for lang in ("de", "es"):
        (root / f"queries.{lang}.jsonl").write_text('{"_id": "q0", "text": "eine Frage"}\n', encoding="utf-8")
    assert [t.language for t in load_xquad(root, "x-en")] == ["es", "de"]  # XQuAD's order, present ones only
    with pytest.raises(FileNotFoundError, match="no query file for language"):
        load_xquad(root, "x-en", ["ru"])


def test_several_nbits_in_one_run(tmp_path, word_encoder):
    """`gingham eval`'s default compares nbits 2 and 4 in one run: the codec ceiling's metrics once shadowed the
    corpus variable, so the second nbits failed with "'dict' object has no attribute 'name'"."""
    task = load_beir(write_beir(tmp_path / "b"))
    res = run_eval([task], tmp_path / "out", model="words", nbits=(1, 2, 4), top_k=8, encoder=word_encoder,
                   metrics=("RR@10", "R@10"), plots=False)
    engines = res["tasks"][task.name]["engines"]
    assert set(engines) == {"exact"} | {f"{e}-nbits{nb}" for e in ("gingham", "ceiling") for nb in (1, 2, 4)}
    assert set(res["builds"]) == {f"{task.corpus.name}-nbits{nb}" for nb in (1, 2, 4)}
