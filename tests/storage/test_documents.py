"""Documents in the library (issue 27.8): hits with their text and metadata, documents by id, delete by filter and
in-place updates of metadata and stored texts (atomic, visible to filters and BM25, kept by reopen and compaction,
a failure leaves the index as it was)."""

from __future__ import annotations

import errno
import json
import threading

import numpy as np
import pytest

import gingham
from gingham.storage import docstore, disk as storage
from gingham.storage import documents as docs_mod
from tests.conftest import normalised

N = 40


def _docs(seed: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [normalised(rng, int(k), 32) for k in rng.integers(3, 12, n)]


def _meta(i: int) -> dict:
    return {"lang": ["en", "de", "fr"][i % 3], "n": i, "tags": [f"t{i % 4}"]}


@pytest.fixture()
def built(tmp_path):
    """An index of N documents with texts and metadata (one word per text that no other text has), plus 5 more
    added in a second segment without metadata."""
    vecs = _docs(0, N)
    ix = gingham.Index.create(tmp_path / "ix", vecs, [f"d{i}" for i in range(N)],
                              texts=[f"text of d{i} word{i}" for i in range(N)], metadata=[_meta(i) for i in range(N)])
    extra = _docs(1, 5)
    ix.add(extra, [f"e{i}" for i in range(5)], texts=[f"extra e{i} xword{i}" for i in range(5)])
    return ix, vecs + extra


def _state(ix: gingham.Index) -> dict:
    return {d["id"]: (d["text"], d["metadata"]) for d in ix.documents(ix.ids())}


# ------------------------------------------------------------------------------------------------ reads
def test_search_hits_carry_text_and_metadata_only_when_asked(built):
    ix, vecs = built
    plain = ix.search(vecs[3][:3], top_k=5)
    assert plain.texts is None and plain.metadata is None
    assert plain.hits(0) == [{"id": i, "score": s} for i, s in plain.rows(0)]  # the default stays as it was
    full = ix.search(vecs[3][:3], top_k=5, include_text=True, include_metadata=True)
    assert full.ids.tolist() == plain.ids.tolist() and np.array_equal(full.scores, plain.scores)
    for hit in full.hits(0):
        assert hit["text"] == ix.text(hit["id"]) and hit["metadata"] == ix.metadata(hit["id"])
    only_meta = ix.search([vecs[3][:3], vecs[41][:2]], top_k=4, include_metadata=True)
    assert only_meta.texts is None and only_meta.metadata.shape == (2, 4)
    assert only_meta.metadata[1, 0] is None and only_meta.ids[1, 0] == "e1"  # added without metadata
    records = full.to_records()
    assert records[0]["text"] == ix.text(records[0]["id"]) and "metadata" in records[0]
    filtered = ix.search(vecs[3][:3], top_k=3, where="lang = ?", params=["en"], include_metadata=True)
    assert all(h["metadata"]["lang"] == "en" for h in filtered.hits(0))
    exhaustive = ix.search(vecs[3][:3], top_k=3, exhaustive=True, include_text=True)
    assert [h["text"] for h in exhaustive.hits(0)] == [ix.text(i) for i in exhaustive.ids[0]]
    with pytest.raises(ValueError, match="include_text must be True or False"):
        ix.search(vecs[3][:3], top_k=3, include_text="yes")


def test_bm25_and_hybrid_hits_carry_documents(built):
    ix, vecs = built
    res = ix.search_bm25(["word7", "xword2"], top_k=3, include_text=True, include_metadata=True)
    assert res.hits(0)[0] == {"id": "d7", "score": res.hits(0)[0]["score"], "text": "text of d7 word7",
                              "metadata": _meta(7)}
    assert res.hits(1)[0]["id"] == "e2" and res.hits(1)[0]["metadata"] is None
    fused = ix.hybrid_search(["word7"], [vecs[7][:4]], top_k=5, include_text=True, include_metadata=True)
    assert fused.hits(0)[0]["id"] == "d7"
    for hit in fused.hits(0):
        assert hit["text"] == ix.text(hit["id"]) and hit["metadata"] == ix.metadata(hit["id"])
    assert ix.hybrid_search(["word7"], [vecs[7][:4]], top_k=5).texts is None


def test_documents_by_id(built):
    ix, _ = built
    assert ix.document("d4") == {"id": "d4", "text": "text of d4 word4", "metadata": _meta(4)}
    assert ix.document("e0", include_text=False) == {"id": "e0", "metadata": None}
    got = ix.documents(["e3", "d1"])
    assert [d["id"] for d in got] == ["e3", "d1"] and got[1]["metadata"] == _meta(1)
    with pytest.raises(gingham.DocumentNotFoundError, match="2 document ids 'x', 'y' are not in the index") as err:
        ix.documents(["d1", "x", "y"])
    assert err.value.ids == ["x", "y"] and isinstance(err.value, KeyError)
    assert ix.documents(["x", "d2"], missing_ok=True) == [None, ix.document("d2")]
    ix.delete(["d2"])
    with pytest.raises(gingham.DocumentNotFoundError, match="'d2' is not in the index"):
        ix.document("d2")
    with pytest.raises(ValueError, match="document id 3 is an int but this index uses string ids"):
        ix.documents([3])


# ------------------------------------------------------------------------------------------------ delete by filter
def test_delete_where(built):
    ix, vecs = built
    before = ix.generation
    assert ix.delete_where("lang = ?", ["nope"]) == 0
    assert ix.generation == before and gingham.Index.open(ix.path).generation == before  # nothing committed
    assert ix.delete_where("lang = ? AND n >= ?", ["de", 10]) == sum(1 for i in range(10, N) if i % 3 == 1)
    assert ix.generation == before + 1
    left = set(ix.ids())
    assert left == {f"d{i}" for i in range(N) if not (i % 3 == 1 and i >= 10)} | {f"e{i}" for i in range(5)}
    res = ix.search(vecs[13][:4], top_k=10)
    assert "d13" not in res.ids[0].tolist()
    assert ix.delete_where("json_extract(_metadata, '$.tags[0]') = :t", {"t": "t0"}) == \
        sum(1 for i in range(N) if i % 4 == 0 and f"d{i}" in left)
    assert all(f"e{i}" in ix for i in range(5))  # no metadata: no field matches
    again = gingham.Index.open(ix.path, verify=True)
    assert set(again.ids()) == set(ix.ids())
    ix.compact()
    assert set(gingham.Index.open(ix.path, verify=True).ids()) == set(again.ids())


def test_delete_where_refuses_bad_filters_and_changes_nothing(built):
    ix, _ = built
    before = (ix.generation, sorted(ix.ids()))
    for where, params, match in [("lang = ", None, "not a valid SQL expression"),
                                 ("1; DELETE FROM docs", None, "contains a ';'"),
                                 ("nosuchfield = 1", None, "its fields are"),
                                 ("lang = ?", [object()], "parameters are str, int, float"),
                                 (lambda m: True, None, "not a callable"),
                                 ("", None, "SQL expression")]:
        with pytest.raises(ValueError, match=match):
            ix.delete_where(where, params)
    assert (ix.generation, sorted(ix.ids())) == before


# ------------------------------------------------------------------------------------------------ update
def test_update_metadata_merge_and_replace(built):
    ix, vecs = built
    others = {k: v for k, v in _state(ix).items() if k not in ("d0", "d1", "e1")}
    tokens = ix.decompress("d0")
    scores = ix.search(vecs[0][:4], top_k=5)
    ix.update(["d0", "e1"], metadata=[{"lang": "xx", "extra": True}, {"lang": "xx"}])
    assert ix.metadata("d0") == {**_meta(0), "lang": "xx", "extra": True}
    assert ix.metadata("e1") == {"lang": "xx"}  # had none: the merge starts from {}
    ix.update(["d1"], metadata=[{"only": 1}], mode="replace")
    assert ix.metadata("d1") == {"only": 1}
    assert {k: v for k, v in _state(ix).items() if k not in ("d0", "d1", "e1")} == others
    # the vectors are untouched: the same tokens, the same results and scores
    assert np.array_equal(ix.decompress("d0"), tokens)
    again = ix.search(vecs[0][:4], top_k=5)
    assert again.ids.tolist() == scores.ids.tolist() and np.array_equal(again.scores, scores.scores)
    # filters see it, in both segments, by new and by changed fields
    q = vecs[0][:4]
    assert {i for i, _ in ix.search(q, top_k=5, where="lang = ?", params=["xx"]).rows(0)} == {"d0", "e1"}
    assert [i for i, _ in ix.search(q, top_k=5, where="only = 1").rows(0)] == ["d1"]
    assert {i for i, _ in ix.search(q, top_k=5, where="extra = 1").rows(0)} == {"d0"}
    assert "d1" not in {i for i, _ in ix.search(q, top_k=N, where="lang IS NOT NULL").rows(0)}
    # and so does every later state: reopen (verified), compaction
    reopened = gingham.Index.open(ix.path, verify=True)
    assert _state(reopened) == _state(ix)
    want = _state(ix)
    ix.compact()
    assert _state(gingham.Index.open(ix.path, verify=True)) == want
    assert {i for i, _ in ix.search(q, top_k=5, where="lang = ?", params=["xx"]).rows(0)} == {"d0", "e1"}


def test_update_texts_reach_bm25_not_the_vectors(built):
    ix, vecs = built
    ix.update(["d5", "e4"], texts=["renamed zebra", None], metadata=[None, {"k": 1}])
    assert ix.text("d5") == "renamed zebra" and ix.text("e4") == "extra e4 xword4"
    assert ix.metadata("d5") == _meta(5) and ix.metadata("e4") == {"k": 1}
    assert ix.search_bm25("zebra", top_k=1).rows(0)[0][0] == "d5"
    assert ix.search_bm25("word5", top_k=3).rows(0) == []
    assert ix.search(vecs[5][:4], top_k=1).rows(0)[0][0] == "d5"
    gingham.Index.open(ix.path, verify=True)


def test_update_refuses_bad_input_and_changes_nothing(built, tmp_path):
    ix, _ = built
    before = (ix.generation, _state(ix))
    cases = [(dict(doc_ids=["d1", "nope"], metadata=[{"a": 1}, {"a": 2}]), gingham.DocumentNotFoundError,
              "'nope' is not in the index; nothing was updated"),
             (dict(doc_ids=["d1"]), ValueError, "nothing to update"),
             (dict(doc_ids=["d1", "d1"], metadata=[{}, {}]), ValueError, "appears twice"),
             (dict(doc_ids=["d1"], metadata=[{"a": 1}, {"b": 2}]), ValueError, "got 2 metadata entries for 1 ids"),
             (dict(doc_ids=["d1"], metadata={"a": 1}), ValueError, "one metadata per id"),
             (dict(doc_ids=["d1"], metadata=[["a"]]), ValueError, "the metadata of document 'd1' must be a dict"),
             (dict(doc_ids=["d1"], metadata=[{"x": float("nan")}]), ValueError, "not JSON-serialisable"),
             (dict(doc_ids=["d1"], metadata=[{1: "a"}]), ValueError, "keys must be strings"),
             (dict(doc_ids=["d1"], texts=[3]), ValueError, "the text of document 'd1' must be a str"),
             (dict(doc_ids=["d1"], metadata=[{}], mode="patch"), ValueError, "mode must be one of"),
             (dict(doc_ids=[], metadata=[]), ValueError, "no document ids given")]
    for kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            ix.update(**kwargs)
    assert (ix.generation, _state(ix)) == before
    no_texts = gingham.Index.create(tmp_path / "nt", _docs(2, 6), [f"n{i}" for i in range(6)])
    with pytest.raises(ValueError, match="does not store its documents' texts"):
        no_texts.update(["n1"], texts=["x"])
    no_texts.update(["n1"], metadata=[{"a": 1}])  # a segment without metadata gets some
    assert no_texts.metadata("n1") == {"a": 1} and no_texts.metadata("n0") is None
    assert [i for i, _ in no_texts.search(_docs(2, 6)[1], top_k=3, where="a = 1").rows(0)] == ["n1"]
    gingham.Index.open(no_texts.path, verify=True)


def test_splice_matches_packing_anew():
    from gingham.common.ids import pack_strings

    rng = np.random.default_rng(5)
    for _ in range(50):
        n = int(rng.integers(1, 12))
        old = ["x" * int(rng.integers(0, 5)) + "é" * int(rng.integers(0, 2)) for _ in range(n)]
        new = {int(i): "y" * int(rng.integers(0, 6)) for i in rng.choice(n, int(rng.integers(0, n + 1)),
                                                                          replace=False)}
        want = pack_strings([new.get(i, s) for i, s in enumerate(old)])
        got = docs_mod.splice(pack_strings(old), n, {i: s.encode() for i, s in new.items()})
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
        nulls = docs_mod.splice(None, n, {i: s.encode() for i, s in new.items()})
        want = pack_strings([new.get(i, "null") for i in range(n)])
        assert np.array_equal(nulls[0], want[0]) and np.array_equal(nulls[1], want[1])


# ------------------------------------------------------------------------------------------------ failures
def _disk_full_at_replace(monkeypatch):
    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage.os, "replace", full)


def _database_write_fails(monkeypatch):
    def broken(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(docstore, "write", broken)


def _data_file_fsync_fails(monkeypatch):
    real = storage.os.fsync

    def full(fd):  # any file of a new generation (arrays, databases): the disk is full
        if ".npy" in storage.os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(storage.os, "fsync", full)


@pytest.mark.parametrize("op, fault", [(op, fault) for op in ("update", "update_texts", "delete_where")
                                       for fault in (_disk_full_at_replace, _data_file_fsync_fails)]
                         + [("update", _database_write_fails), ("update_texts", _database_write_fails)])
def test_a_failed_write_leaves_the_index_as_it_was(built, monkeypatch, fault, op):
    ix, vecs = built
    manifest = (ix.path / storage.MANIFEST).read_bytes()
    entries = {p.name for p in ix.path.iterdir()}
    state = _state(ix)
    run = {"update": lambda: ix.update(["d0", "e0"], metadata=[{"lang": "zz"}, {"lang": "zz"}]),
           "update_texts": lambda: ix.update(["d0"], texts=["changed"]),
           "delete_where": lambda: ix.delete_where("lang = ?", ["en"])}[op]
    with monkeypatch.context() as m:
        fault(m)
        with pytest.raises(OSError):
            run()
    assert (ix.path / storage.MANIFEST).read_bytes() == manifest
    assert {p.name for p in ix.path.iterdir()} == entries  # no new generation left behind
    for handle in (ix, gingham.Index.open(ix.path, verify=True)):
        handle.refresh()
        assert _state(handle) == state
        assert len(handle.search(vecs[0][:3], top_k=5, where="lang = ?", params=["zz"]).rows(0)) == 0
    run()  # and the same write then works
    assert _state(gingham.Index.open(ix.path, verify=True)) != state


def test_readers_during_metadata_updates_see_whole_generations(built):
    """Readers (documents by id, filtered searches) in threads while a writer updates every document's metadata
    to one version after another: each read sees one version for all documents, never a mix or an error."""
    ix, vecs = built
    ids = ix.ids()
    stop, errors, seen = threading.Event(), [], set()

    def reader(k: int) -> None:
        handle = gingham.Index.open(ix.path)
        q = vecs[k][:3]
        while not stop.is_set():
            try:
                handle.refresh()
                versions = {(d["metadata"] or {}).get("v") for d in handle.documents(ids)}
                if len(versions) != 1:
                    errors.append(f"mixed versions {versions}")
                v = versions.pop()
                seen.add(v)
                if v is not None:
                    n = len(handle.search(q, top_k=len(ids), where="v = ?", params=[v]).rows(0))
                    stale = len(handle.search(q, top_k=len(ids), where="v != ?", params=[v]).rows(0))
                    if stale:
                        errors.append(f"{stale} documents of another version than {v} in one generation")
                    if n == 0:
                        errors.append(f"no document of version {v}")
            except Exception as exc:  # noqa: BLE001 - any error is a failure of the test
                errors.append(repr(exc))

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    try:
        for v in range(12):
            ix.update(ids, metadata=[{"v": v}] * len(ids))
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors[:5]
    assert len(seen) >= 2


def test_cli_get_and_delete_where(built):
    from typer.testing import CliRunner

    from gingham.app.cli import app

    ix, _ = built
    runner = CliRunner()
    r = runner.invoke(app, ["get", str(ix.path), "d4", "e0"])
    assert r.exit_code == 0, r.output
    assert [json.loads(line) for line in r.output.splitlines()] == ix.documents(["d4", "e0"])
    r = runner.invoke(app, ["delete", str(ix.path), "--where", "lang = ? AND n < ?", "--param", "fr", "--param", "9"])
    assert r.exit_code == 0, r.output
    assert "3 documents deleted" in r.output
    ix.refresh()
    assert not {"d2", "d5", "d8"} & set(ix.ids()) and "d11" in ix
