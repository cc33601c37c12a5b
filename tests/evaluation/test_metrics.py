import math

import numpy as np
import pytest

from gingham.build.corpus import read_qrels
from gingham.evaluation import evaluate, overlap_recall

QRELS = {"q1": {"d1": 2, "d2": 1, "d3": 0}, "q2": {"d5": 1}}
RUN = {"q1": ["d3", "d1", "d4", "d2"], "q2": ["d5"]}

# hand-computed for q1 (trec_eval: linear gains, grade > 0 relevant):
# DCG@10 = 2/log2(3) + 1/log2(5); IDCG = 2 + 1/log2(3); RR = 1/2; R@2 = 1/2; AP = (1/2 + 2/4) / 2
DCG = 2 / math.log2(3) + 1 / math.log2(5)
IDCG = 2 + 1 / math.log2(3)


def test_metrics_against_hand_computed_values():
    got = evaluate(QRELS, RUN, ["nDCG@10", "RR@10", "R@2", "R@10", "AP", "P@2"], per_query=True)
    per = got["per_query"]
    assert per["nDCG@10"]["q1"] == pytest.approx(DCG / IDCG)
    assert per["RR@10"]["q1"] == pytest.approx(0.5)
    assert per["R@2"]["q1"] == pytest.approx(0.5)
    assert per["R@10"]["q1"] == pytest.approx(1.0)
    assert per["AP"]["q1"] == pytest.approx(0.5)
    assert per["P@2"]["q1"] == pytest.approx(0.5)
    assert all(per[m]["q2"] == pytest.approx(1.0) for m in ("nDCG@10", "RR@10", "AP"))
    assert got["nDCG@10"] == pytest.approx((DCG / IDCG + 1) / 2)
    assert got["RR@10"] == pytest.approx(0.75)
    assert got["AP"] == pytest.approx(0.75)


def test_rank_order_is_kept_and_cutoffs_apply():
    # RR@1 sees only the first document; the ranking is taken as given (no re-sorting by id)
    got = evaluate({"q": {"a": 1}}, {"q": ["z", "a"]}, ["RR@1", "RR@10", "nDCG@1"])
    assert got["RR@1"] == 0.0 and got["RR@10"] == pytest.approx(0.5) and got["nDCG@1"] == 0.0


def test_query_missing_from_run_scores_zero():
    got = evaluate(QRELS, {"q2": ["d5"]}, ["nDCG@10", "RR@10"])
    assert got["nDCG@10"] == pytest.approx(0.5) and got["RR@10"] == pytest.approx(0.5)
    assert evaluate(QRELS, {}, ["RR@10"])["RR@10"] == 0.0


def test_unknown_metric_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(QRELS, RUN, ["NotAMetric@3"])


@pytest.mark.parametrize("header", [True, False])
def test_qrels_with_and_without_header(tmp_path, header):
    path = tmp_path / "qrels.tsv"
    lines = (["query-id\tcorpus-id\tscore"] if header else []) + [
        f"{q}\t{d}\t{g}" for q, docs in QRELS.items() for d, g in docs.items()]
    path.write_text("\n".join(lines) + "\n")
    qrels = read_qrels(path)
    assert qrels == QRELS
    assert evaluate(qrels, RUN, ["nDCG@10"])["nDCG@10"] == pytest.approx((DCG / IDCG + 1) / 2)


def test_overlap_recall():
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    approx = np.array([[2, 1, 9, 9], [5, 0, 0, 0]])
    assert overlap_recall(approx, exact, 2) == pytest.approx((1.0 + 0.5) / 2)
    assert overlap_recall(approx, exact, 4) == pytest.approx((0.5 + 0.25) / 2)
    # gaps (-1) in the exact run shrink the denominator
    assert overlap_recall(np.array([[3, -1]]), np.array([[3, -1]]), 2) == 1.0
    with pytest.raises(ValueError):
        overlap_recall(approx, exact, 5)
