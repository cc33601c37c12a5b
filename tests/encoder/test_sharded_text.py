"""Text search over shards of one corpus built separately with one codec: the API and ``gingham search`` on a
shard set, against one index over every text."""

import json

import numpy as np
import pytest

import gingham
from gingham.shards.sharded import write_shard_set
from tests.encoder.conftest import CORPUS

pytestmark = pytest.mark.encoder


def test_text_shards_answer_as_one_index(bert_pylate, tmp_path):
    from typer.testing import CliRunner

    from gingham.app.cli import app

    texts = list(dict.fromkeys(CORPUS))  # the 8 distinct texts
    ids = [f"t{i}" for i in range(len(texts))]
    opts = dict(model=str(bert_pylate), calibrate=False, seed=1)
    one = gingham.Index.from_texts(tmp_path / "one", texts, ids, n_centroids=8, **opts)
    gingham.Index.from_texts(tmp_path / "set" / "a", texts[:4], ids[:4], codec=one.codec, **opts)
    gingham.Index.from_texts(tmp_path / "set" / "b", texts[4:], ids[4:], codec=one.codec, **opts)
    write_shard_set(tmp_path / "set", [tmp_path / "set" / "a", tmp_path / "set" / "b"])
    shards = gingham.ShardedIndex.open(tmp_path / "set")
    queries = ["late interaction maxsim", "lazy dog"]
    got = shards.search_text(queries, top_k=5, exhaustive=True)
    want = one.search_text(queries, top_k=5, exhaustive=True)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)
    out = CliRunner().invoke(app, ["search", str(tmp_path / "set"), *queries, "--top-k", "5", "--exhaustive",
                                   "--json"])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line[line.index("{"):]) for line in out.output.splitlines() if "{" in line]
    assert [r["id"] for r in rows if r["query"] == 0] == list(want.ids[0])
    assert shards.text("t6") == texts[6]
