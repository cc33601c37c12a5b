"""Shared by the streaming tests and their subprocess worker: one seeded corpus and the build options."""

import time

import numpy as np

from gingham.build.streaming import ArraySource
from gingham.evaluation.synthetic import make_corpus

N_DOCS = 1500
OPTIONS = dict(n_centroids=256, nbits=2, kmeans_niters=4, seed=5, codec_sample=4096, calibrate=False)
CHUNK_TOKENS = 4000


def corpus():
    return make_corpus(N_DOCS, dim=64, mean_length=30, n_topics=64, vocab_size=4096, seed=11)


def ids(n):
    return [f"doc-{i:05d}" for i in range(n)]


class SlowSource(ArraySource):
    """An ArraySource that sleeps per batch, so that a build can be killed between chunk commits."""

    def __init__(self, *args, delay: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.delay = delay

    def batches(self, start=0):
        for b in super().batches(start):
            if b.flat is not None:
                time.sleep(self.delay)
            yield b


def source(c, delay: float = 0.0):
    return SlowSource(c.tokens, c.lengths, ids(c.n_docs), name="synthetic-11", batch_docs=50, delay=delay)


def segment_arrays(index):
    (seg,) = index._snap.segments
    a = seg.arrays
    return {"codes": np.asarray(a.codes), "residuals": np.asarray(a.residuals),
            "doc_offsets": np.asarray(a.doc_offsets), "ivf_docs": np.asarray(a.ivf_docs),
            "ivf_offsets": np.asarray(a.ivf_offsets), "ids": seg.ids.to_list(),
            "centroids": index.codec.centroids, "weights": index.codec.weights, "cutoffs": index.codec.cutoffs,
            "scales": index.codec.scales,
            "sub_centroids": np.zeros(0) if index.codec.sub_centroids is None else index.codec.sub_centroids}


def assert_same_index(a, b):
    x, y = segment_arrays(a), segment_arrays(b)
    for key in x:
        if key == "ids":
            assert x[key] == y[key], key
        else:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)
