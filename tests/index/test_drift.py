"""The codebook-drift warning speaks once the drift is measured on enough added tokens (issue 27.12)."""

import logging

import numpy as np

import gingham
from gingham import index as index_module
from tests.conftest import anisotropic, normalised


def _adds_warned(caplog, ix, docs, ids) -> bool:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gingham"):
        ix.add(docs, ids)
    return "codebook drift" in caplog.text


def test_one_document_added_to_a_small_index_does_not_warn(tmp_path, caplog):
    rng = np.random.default_rng(1)
    docs = [normalised(rng, int(n), 32) for n in rng.integers(3, 10, 21)]
    ix = gingham.Index.create(tmp_path / "ix", docs[:20], nbits=2, calibrate=False)
    assert not _adds_warned(caplog, ix, docs[20:], [20])
    # the drift reads high (a baseline of ~25 held-out tokens against a handful of new ones), and means nothing
    assert ix.codebook_drift() > index_module.DRIFT_WARNING


def test_the_warning_waits_for_enough_added_tokens(tmp_path, caplog):
    rng = np.random.default_rng(0)
    build = anisotropic(rng, 3000, 32)
    ix = gingham.Index.create(tmp_path / "ix", [build[i:i + 6] for i in range(0, 3000, 6)], nbits=2,
                              calibrate=False)
    shifted = normalised(np.random.default_rng(9), 2000, 32)  # another distribution: the codebook fits it badly
    few = [shifted[i:i + 8] for i in range(0, 400, 8)]  # 400 tokens
    assert not _adds_warned(caplog, ix, few, list(range(1000, 1000 + len(few))))
    assert ix.codebook_drift() > index_module.DRIFT_WARNING
    more = [shifted[i:i + 8] for i in range(400, 2000, 8)]  # 2,000 added tokens in all: past DRIFT_MIN_TOKENS
    assert _adds_warned(caplog, ix, more, list(range(2000, 2000 + len(more))))
    assert "over 2000 added tokens" in caplog.text
