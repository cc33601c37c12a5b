import json
import os
from pathlib import Path

import numpy as np
import pytest

import gingham
from gingham.storage import disk as storage
from tests.conftest import anisotropic, normalised


@pytest.fixture()
def small_docs():
    rng = np.random.default_rng(0)
    return [normalised(rng, int(n), 32) for n in rng.integers(1, 12, 60)]


def test_save_open_round_trip(tmp_path, small_docs):
    ids = [f"doc-{i}" for i in range(len(small_docs))]
    ix = gingham.Index.create(tmp_path / "ix", small_docs, ids, nbits=4)
    again = gingham.Index.open(tmp_path / "ix", verify=True)
    again.verify()
    assert again.n_docs == len(small_docs) and again.dim == 32 and again.nbits == 4
    assert again.ids() == ids
    assert again.info()["n_tokens"] == sum(len(d) for d in small_docs)
    assert isinstance(again._snap.segments[0].arrays.codes, np.memmap)
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert manifest["format_version"] == storage.FORMAT_VERSION
    for meta in manifest["files"].values():
        assert len(meta["sha256"]) == 64
    np.testing.assert_array_equal(ix.decompress("doc-3"), again.decompress("doc-3"))


def test_refuses_to_overwrite_without_flag(tmp_path, small_docs):
    gingham.Index.create(tmp_path / "ix", small_docs)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        gingham.Index.create(tmp_path / "ix", small_docs)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        gingham.Index.create(tmp_path / "other", small_docs)


def test_overwrite_swaps_generation_and_cleans_up(tmp_path, small_docs):
    gingham.Index.create(tmp_path / "ix", small_docs)
    old_reader = gingham.Index.open(tmp_path / "ix")
    ix2 = gingham.Index.create(tmp_path / "ix", small_docs[:30], overwrite=True)
    assert ix2.n_docs == 30 and ix2.manifest["generation"] == 2
    gens = [p for p in (tmp_path / "ix").iterdir() if p.name.startswith("gen-")]
    assert len(gens) == 1
    # a reader opened before the swap keeps working on its memory maps
    assert old_reader.search(small_docs[0], top_k=3).positions.shape == (1, 3)


def test_failed_write_leaves_previous_index(tmp_path, small_docs, monkeypatch):
    gingham.Index.create(tmp_path / "ix", small_docs)
    before = (tmp_path / "ix" / "manifest.json").read_bytes()
    calls = {"n": 0}
    real_save = storage.GenerationWriter.save

    def failing_save(self, name, arr):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(28, "No space left on device")
        real_save(self, name, arr)

    monkeypatch.setattr(storage.GenerationWriter, "save", failing_save)
    with pytest.raises(OSError, match="No space"):
        gingham.Index.create(tmp_path / "ix", small_docs[:10], overwrite=True)
    assert (tmp_path / "ix" / "manifest.json").read_bytes() == before
    ix = gingham.Index.open(tmp_path / "ix", verify=True)
    assert ix.n_docs == len(small_docs)
    assert len([p for p in (tmp_path / "ix").iterdir() if p.name.startswith("gen-")]) == 1


def test_crash_before_commit_leaves_stray_dir_that_is_ignored_then_removed(tmp_path, small_docs):
    gingham.Index.create(tmp_path / "ix", small_docs)
    stray = tmp_path / "ix" / "gen-000009-deadbeef"
    stray.mkdir()
    (stray / "codes.npy").write_bytes(b"partial")
    assert gingham.Index.open(tmp_path / "ix").n_docs == len(small_docs)
    gingham.Index.create(tmp_path / "ix", small_docs, overwrite=True)
    assert not stray.exists()


def test_not_an_index(tmp_path):
    with pytest.raises(FileNotFoundError):
        gingham.Index.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(gingham.IndexFormatError, match="no manifest.json"):
        gingham.Index.open(tmp_path / "empty")


def test_unknown_format_version(tmp_path, small_docs):
    gingham.Index.create(tmp_path / "ix", small_docs)
    path = tmp_path / "ix" / "manifest.json"
    m = json.loads(path.read_text())
    m["format_version"] = 99
    path.write_text(json.dumps(m))
    with pytest.raises(gingham.IndexFormatError, match="version 99"):
        gingham.Index.open(tmp_path / "ix")


def test_truncated_file_is_named(tmp_path, small_docs):
    ix = gingham.Index.create(tmp_path / "ix", small_docs)
    victim = tmp_path / "ix" / ix.manifest["files"]["s000001/residuals"]["path"]
    with open(victim, "r+b") as f:
        f.truncate(os.path.getsize(victim) - 5)
    with pytest.raises(gingham.IndexCorruptError, match="residuals.npy"):
        gingham.Index.open(tmp_path / "ix")


def test_flipped_byte_caught_by_verify(tmp_path, small_docs):
    ix = gingham.Index.create(tmp_path / "ix", small_docs)
    victim = tmp_path / "ix" / ix.manifest["files"]["s000001/residuals"]["path"]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF  # any residual byte is valid: only the checksum can tell
    victim.write_bytes(bytes(data))
    gingham.Index.open(tmp_path / "ix")  # sizes still match: a plain open is cheap and does not hash
    with pytest.raises(gingham.IndexCorruptError, match="checksum"):
        gingham.Index.open(tmp_path / "ix", verify=True)
    with pytest.raises(gingham.IndexCorruptError, match="residuals.npy does not match its checksum"):
        gingham.Index.open(tmp_path / "ix").verify()


def test_corrupt_manifest(tmp_path, small_docs):
    gingham.Index.create(tmp_path / "ix", small_docs)
    (tmp_path / "ix" / "manifest.json").write_text("{not json")
    with pytest.raises(gingham.IndexCorruptError, match="manifest.json"):
        gingham.Index.open(tmp_path / "ix")


def test_write_lock_is_exclusive(tmp_path):
    with storage.write_lock(tmp_path):
        with pytest.raises(gingham.IndexLockedError):
            with storage.write_lock(tmp_path, blocking=False):
                pass


def test_streamed_array_equals_np_save_and_records_its_checksum(tmp_path):
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 255, (1000, 24), dtype=np.uint8)
    writer = storage.GenerationWriter(tmp_path, 1)
    with writer.stream("seg/residuals", arr.shape, arr.dtype) as out:
        for lo in range(0, len(arr), 333):
            out.write(arr[lo:lo + 333])
    meta = writer.files["seg/residuals"]
    path = tmp_path / meta["path"]
    np.testing.assert_array_equal(np.load(path, mmap_mode="r"), arr)
    assert meta["sha256"] == storage.sha256_file(path)
    np.save(tmp_path / "ref.npy", arr)
    assert path.read_bytes() == (tmp_path / "ref.npy").read_bytes()


def test_streamed_array_refuses_missing_or_extra_rows(tmp_path):
    writer = storage.GenerationWriter(tmp_path, 1)
    with pytest.raises(ValueError, match="1 rows written, 3 declared"):
        with writer.stream("a", (3, 2), np.int32) as out:
            out.write(np.zeros((1, 2), np.int32))
    with pytest.raises(ValueError, match="cannot append"):
        with writer.stream("b", (1, 2), np.int32) as out:
            out.write(np.zeros((2, 2), np.int32))
    assert "a" not in writer.files and "b" not in writer.files


def test_inverted_lists_are_built_on_open_and_shared_by_snapshots_that_keep_the_segment(tmp_path, small_docs):
    from gingham.kernels.ivf import build_ivf

    ids = [f"d{i}" for i in range(len(small_docs))]
    ix = gingham.Index.create(tmp_path / "ix", small_docs[:30], ids[:30], texts=[f"t{i}" for i in range(30)])
    assert not any("ivf" in name for name in ix.manifest["files"])  # format 4 stores none
    first = ix._snap.segments[0]
    lists = first.arrays.ivf_docs
    ix.add(small_docs[30:], ids[30:], texts=[f"t{i}" for i in range(30, 60)])
    assert ix._snap.segments[0].arrays.ivf_docs is lists  # the kept segment's lists are not built again
    ix.delete(["d3", "d4", "d40", "d59"])
    ix.compact()
    again = gingham.Index.open(tmp_path / "ix", verify=True)
    assert not any("ivf" in name for name in again.manifest["files"])
    seg = again._snap.segments[0]
    docs, offsets = build_ivf(np.asarray(seg.stored.codes), again.codec.sub_bits,
                              np.asarray(seg.stored.doc_offsets), again.codec.n_centroids)
    np.testing.assert_array_equal(seg.arrays.ivf_docs, docs)
    np.testing.assert_array_equal(seg.arrays.ivf_offsets, offsets)
    assert not seg.arrays.ivf_docs.flags.writeable
    live = [i for i in ids if i not in {"d3", "d4", "d40", "d59"}]
    assert again.ids() == live
    assert again.text("d41") == "t41"
    np.testing.assert_array_equal(again.decompress("d41"), ix.decompress("d41"))


def _reopen_then_update(root, queries, before, small_docs, check_old=lambda old: None):
    """Open an index rewritten to an older format: it verifies, searches as ``before`` (documents d0..d39), takes
    the rest of ``small_docs`` as an update and reopens at this version's format. Returns the reopened index."""
    old = gingham.Index.open(root, verify=True)
    check_old(old)
    after = old.search(queries, top_k=5)
    np.testing.assert_array_equal(after.positions, before.positions)
    np.testing.assert_array_equal(after.scores, before.scores)
    old.add(small_docs[40:], [f"d{i}" for i in range(40, len(small_docs))])
    again = gingham.Index.open(root, verify=True)
    assert again.manifest["format_version"] == storage.FORMAT_VERSION == 5
    return again


def test_format_3_index_with_stored_inverted_lists_opens_and_becomes_format_4_on_update(tmp_path, small_docs):
    """Indexes of format 3 and older stored each segment's inverted lists; readers leave them unread (even
    damaged: they are never used) and the lists built from the codes answer the same."""
    from gingham.kernels.ivf import build_ivf

    ix = gingham.Index.create(tmp_path / "ix", small_docs[:40], [f"d{i}" for i in range(40)], nbits=2)
    queries = small_docs[40:45]
    before = ix.search(queries, top_k=5)
    root = tmp_path / "ix"
    manifest = json.loads((root / "manifest.json").read_text())
    seg = ix._snap.segments[0]
    docs, offsets = build_ivf(np.asarray(seg.stored.codes), ix.codec.sub_bits, np.asarray(seg.stored.doc_offsets),
                              ix.codec.n_centroids)
    gen_dir = Path(manifest["files"]["s000001/codes"]["path"]).parent
    for key, arr in (("ivf_docs", np.zeros_like(docs)), ("ivf_offsets", offsets)):  # docs all 0: unread
        rel = gen_dir / f"s000001.{key}.npy"
        np.save(root / rel, arr)
        manifest["files"][f"s000001/{key}"] = {"bytes": (root / rel).stat().st_size, "dtype": arr.dtype.str,
                                               "path": str(rel), "sha256": storage.sha256_file(root / rel),
                                               "shape": list(arr.shape)}
    manifest["format_version"] = 3
    (root / "manifest.json").write_text(json.dumps(manifest))

    again = _reopen_then_update(root, queries, before, small_docs)
    np.testing.assert_array_equal(again.search(queries, top_k=5, subset=[f"d{i}" for i in range(40)]).scores,
                                  before.scores)


def test_format_1_index_opens_and_becomes_format_2_on_update(tmp_path, small_docs, monkeypatch):
    """An index written before per-centroid residual scales (format 1: no residual_scales.npy) opens with every
    scale 1, searches as before, and its first update writes the scales file and format 2."""
    from gingham.codec import training

    with monkeypatch.context() as m:  # what format 1 decoded: every scale 1
        m.setattr(training, "residual_scales", lambda x, codes, centroids, *a: np.ones(len(centroids), np.float32))
        ix = gingham.Index.create(tmp_path / "ix", small_docs[:40], [f"d{i}" for i in range(40)], nbits=2)
    queries = small_docs[40:45]
    before = ix.search(queries, top_k=5)
    path = tmp_path / "ix" / "manifest.json"
    manifest = json.loads(path.read_text())
    (tmp_path / "ix" / manifest["files"].pop("residual_scales")["path"]).unlink()
    manifest["format_version"] = 1
    path.write_text(json.dumps(manifest))

    again = _reopen_then_update(tmp_path / "ix", queries, before, small_docs,
                                lambda old: np.testing.assert_array_equal(old.codec.scales, 1))
    assert "residual_scales" in again.manifest["files"]
    np.testing.assert_array_equal(again.codec.scales, 1)
    first = again.search(queries, top_k=5, subset=[f"d{i}" for i in range(40)])  # the documents of format 1
    np.testing.assert_array_equal(first.scores, before.scores)


def test_format_2_without_scales_is_refused(tmp_path, small_docs):
    ix = gingham.Index.create(tmp_path / "ix", small_docs)
    path = tmp_path / "ix" / "manifest.json"
    manifest = json.loads(path.read_text())
    (tmp_path / "ix" / manifest["files"].pop("residual_scales")["path"]).unlink()
    path.write_text(json.dumps(manifest))
    with pytest.raises(gingham.IndexFormatError, match="residual_scales"):
        gingham.Index.open(tmp_path / "ix")
    assert ix.n_docs == len(small_docs)


def test_format_4_bucket_grid_index_opens_and_keeps_its_grid(tmp_path, small_docs):
    """Format 4 decoded residuals with the per-dimension bucket grid (no residual_codewords.npy). Such an index
    opens, searches as before, and its updates compress with the same grid (format 5 on the next commit); a new
    build stores product codewords."""
    ix = gingham.Index.create(tmp_path / "ix", small_docs[:40], [f"d{i}" for i in range(40)], nbits=2,
                              product_residuals=False)
    assert "residual_codewords" not in ix.manifest["files"] and ix.codec.codewords is None
    queries = small_docs[40:45]
    before = ix.search(queries, top_k=5)
    path = tmp_path / "ix" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["format_version"] = 4
    path.write_text(json.dumps(manifest))

    again = _reopen_then_update(tmp_path / "ix", queries, before, small_docs)
    assert again.codec.codewords is None and "residual_codewords" not in again.manifest["files"]
    np.testing.assert_array_equal(again.search(queries, top_k=5, subset=[f"d{i}" for i in range(40)]).scores,
                                  before.scores)

    rng = np.random.default_rng(1)
    tokens = anisotropic(rng, 20_000, 32)
    new = gingham.Index.create(tmp_path / "new", np.split(tokens, 200), nbits=2)
    assert new.codec.codewords is not None and new.info()["residual_quantizer"]["kind"] == "product"
    assert new.manifest["files"]["residual_codewords"]["dtype"] == np.dtype(np.int8).str
    reopened = gingham.Index.open(tmp_path / "new", verify=True)
    np.testing.assert_array_equal(reopened.codec.codewords, new.codec.codewords)
