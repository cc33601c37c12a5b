import pytest

from gingham import BuildConfig, SearchConfig


def test_unknown_key_is_an_error():
    with pytest.raises(ValueError, match="unknown SearchConfig option"):
        SearchConfig.from_dict({"topk": 3})
    with pytest.raises(ValueError, match="unknown BuildConfig option"):
        BuildConfig.from_dict({"n_bits": 2})


@pytest.mark.parametrize("bad", [{"nbits": 3}, {"nbits": 8}, {"kmeans_niters": 0}, {"n_centroids": 0}, {"seed": -1}])
def test_build_config_validates(bad):
    with pytest.raises(ValueError):
        BuildConfig(**bad)


@pytest.mark.parametrize("bad", [{"top_k": 0}, {"top_k": 2.5}, {"n_ivf_probe": 0},
                                 {"centroid_score_threshold": float("nan")}, {"exhaustive": 1}])
def test_search_config_validates(bad):
    with pytest.raises(ValueError):
        SearchConfig(**bad)


def test_resolved_defaults_follow_plaid_and_never_mutate():
    base = SearchConfig()
    r10 = base.resolved()
    assert (r10.n_ivf_probe, r10.centroid_score_threshold, r10.n_full_scores) == (1, 0.5, 256)
    assert r10.min_candidates == 256 and r10.n_exact == 64
    r100 = base.replace(top_k=100).resolved()
    assert (r100.n_ivf_probe, r100.centroid_score_threshold, r100.n_full_scores) == (2, 0.45, 1024)
    r1000 = base.replace(top_k=1000).resolved()
    assert (r1000.n_ivf_probe, r1000.n_full_scores) == (4, 4096)
    assert base.n_ivf_probe is None and base.top_k == 10  # nothing written back
    assert base.replace(top_k=3, n_full_scores=2).resolved().n_full_scores == 3  # never fewer than top_k
