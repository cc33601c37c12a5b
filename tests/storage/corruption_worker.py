"""Damage a copy of an index one way per case; report what a plain open + search and an open + verify do.

Run by tests/storage/test_corruption.py in a subprocess (a segfault must fail a case, not kill pytest)::

    python corruption_worker.py INDEX BASELINE.npz SCRATCH CASE [CASE ...]

For each case it prints ``start NAME`` before touching anything, then ``result NAME JSON``. A worker that dies
leaves ``start NAME`` as its last line: that case crashed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

MANIFEST = "manifest.json"
N_SEARCH_QUERIES = 4


@dataclass(frozen=True)
class Case:
    name: str
    damage: Callable[[Path], None]  # applied to a fresh copy of the index
    targets: tuple[str, ...]  # an error must name one of these (file names, or manifest.json)
    may_differ: bool = False  # content no cheap check can see: a plain search may return other results


# -------------------------------------------------------------------------------------------------- helpers
def read_manifest(root: Path) -> dict:
    return json.loads((root / MANIFEST).read_text())


def write_manifest(root: Path, manifest) -> None:
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def edit_manifest(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        m = read_manifest(root)
        out = edit(m)
        write_manifest(root, m if out is None else out)
    return damage


def raw_manifest(data: bytes) -> Callable[[Path], None]:
    return lambda root: (root / MANIFEST).write_bytes(data)


def header_length(path: Path) -> int:
    """Bytes before a .npy file's data."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}[version]
        read(f)
        return f.tell()


def flip(name: str, where: str) -> Callable[[Path], None]:
    """XOR one byte of ``name``'s file: the magic, the header length, the header text, or mid-data (a SQLite
    database: its header magic, page size, schema cookie, or mid-file)."""
    def damage(root: Path) -> None:
        path = root / read_manifest(root)["files"][name]["path"]
        data = bytearray(path.read_bytes())
        if is_database(root, name):
            pos = {"magic": 1, "page-size": 16, "schema-cookie": 43, "data": len(data) // 2 + 100}[where]
            data[pos] ^= 0xFF if where == "data" else 0x01
            path.write_bytes(bytes(data))
            return
        start = header_length(path)
        pos = {"magic": 1, "header-length": 8, "header-text": (10 + start) // 2,
               "data": start + (len(data) - start) // 2}[where]
        data[pos] ^= 0xFF if where == "data" else 0x01
        path.write_bytes(bytes(data))
    return damage


def shape_digit(name: str) -> Callable[[Path], None]:
    """Change the first digit of the shape in ``name``'s header to another digit."""
    def damage(root: Path) -> None:
        path = root / read_manifest(root)["files"][name]["path"]
        data = bytearray(path.read_bytes())
        pos = data.index(b"'shape': (") + len(b"'shape': (")
        data[pos] = ord("9") if data[pos] != ord("9") else ord("8")
        path.write_bytes(bytes(data))
    return damage


def truncate(name: str, how: str) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        path = root / read_manifest(root)["files"][name]["path"]
        size = path.stat().st_size
        with open(path, "r+b") as f:
            f.truncate({"half": size // 2, "last-byte": size - 1, "empty": 0}[how])
    return damage


def is_database(root: Path, name: str) -> bool:
    return read_manifest(root)["files"][name].get("kind") == "sqlite"


def sql(name: str, *statements: str) -> Callable[[Path], None]:
    """Run ``statements`` in database ``name`` and record its new size and sha256 in the manifest: a sound
    database that disagrees with its segment, which only verify can see."""
    def damage(root: Path) -> None:
        import sqlite3

        m = read_manifest(root)
        meta = m["files"][name]
        path = root / meta["path"]
        conn = sqlite3.connect(path, isolation_level=None)
        for statement in statements:
            conn.execute(statement)
        conn.close()
        meta.update(bytes=path.stat().st_size, sha256=hashlib.sha256(path.read_bytes()).hexdigest())
        write_manifest(root, m)
    return damage


def delete(name: str) -> Callable[[Path], None]:
    return lambda root: (root / read_manifest(root)["files"][name]["path"]).unlink()


def rewrite(name: str, change: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    """Replace array ``name`` by ``change(array)`` and record its size, shape, dtype and sha256 in the manifest:
    damage that only a check of meaning can see."""
    def damage(root: Path) -> None:
        m = read_manifest(root)
        meta = m["files"][name]
        path = root / meta["path"]
        arr = change(np.array(np.load(path, allow_pickle=False)))
        path.unlink()
        np.save(path, arr, allow_pickle=False)
        meta.update(bytes=path.stat().st_size, shape=list(arr.shape), dtype=arr.dtype.str,
                    sha256=hashlib.sha256(path.read_bytes()).hexdigest())
        write_manifest(root, m)
    return damage


def setitem(index, value, dtype=None) -> Callable[[np.ndarray], np.ndarray]:
    def change(a: np.ndarray) -> np.ndarray:
        a = a.astype(dtype) if dtype is not None else a
        a[index] = value
        return a
    return change


def outside_copy(root: Path, name: str) -> Path:
    """A valid copy of array ``name`` outside the index directory (what an escaping path would read)."""
    src = root / read_manifest(root)["files"][name]["path"]
    dst = root.parent / f"{root.name}-outside.npy"
    shutil.copy(src, dst)
    return dst


def path_to(name: str, make: Callable[[Path], str]) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        m = read_manifest(root)
        m["files"][name]["path"] = make(root)
        write_manifest(root, m)
    return damage


def symlink_file(name: str) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        target = outside_copy(root, name)
        path = root / read_manifest(root)["files"][name]["path"]
        path.unlink()
        path.symlink_to(target)
    return damage


def symlink_generation(name: str) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        gen = root / read_manifest(root)["files"][name]["path"].split("/")[0]
        moved = root.parent / f"{root.name}-outside-gen"
        shutil.move(gen, moved)
        gen.symlink_to(moved, target_is_directory=True)
    return damage


# -------------------------------------------------------------------------------------------------- cases
def cases(root: Path) -> list[Case]:
    """Every damage of every file of the index at ``root`` (built by :func:`build`)."""
    m = read_manifest(root)
    files = m["files"]
    base = {name: Path(meta["path"]).name for name, meta in files.items()}
    out: list[Case] = []
    for name in sorted(files):
        t = (base[name],)
        for how in ("half", "last-byte", "empty"):
            out.append(Case(f"{name}:truncate-{how}", truncate(name, how), t))
        if files[name].get("kind") == "sqlite":
            for where in ("magic", "page-size", "schema-cookie"):
                out.append(Case(f"{name}:flip-{where}", flip(name, where), t, may_differ=where != "magic"))
            out.append(Case(f"{name}:flip-data", flip(name, "data"), t, may_differ=True))
            out.append(Case(f"{name}:delete", delete(name), t))
            continue
        for where in ("magic", "header-length", "header-text"):
            out.append(Case(f"{name}:flip-{where}", flip(name, where), t))
        if files[name]["shape"] and files[name]["shape"][0] > 0:  # arrays
            out.append(Case(f"{name}:flip-header-shape", shape_digit(name), t))
            out.append(Case(f"{name}:flip-data", flip(name, "data"), t, may_differ=True))
        out.append(Case(f"{name}:delete", delete(name), t))

    mf = (MANIFEST,)
    raw = {"garbage": b"\x00\xffnot json at all", "empty": b"", "list": b"[]", "null": b"null", "object": b"{}",
           "string": b'"gingham"', "number": b"42", "truncated": (root / MANIFEST).read_bytes()[:200]}
    for label, data in raw.items():
        out.append(Case(f"manifest:{label}", raw_manifest(data), mf))

    def setkey(path: tuple, value) -> Callable[[dict], None]:
        def edit(d: dict) -> None:
            for key in path[:-1]:
                d = d[key]
            d[path[-1]] = value
        return edit

    def delkey(key: str) -> Callable[[dict], None]:
        return lambda d: d.pop(key)

    seg0 = m["segments"][0]
    edits: dict[str, Callable[[dict], object]] = {
        "format-version-99": setkey(("format_version",), 99),
        "format-version-str": setkey(("format_version",), "2"),
        "format-version-0": setkey(("format_version",), 0),
        "format-name": setkey(("format",), "other-index"),
        "nbits-1": setkey(("nbits",), 1), "nbits-4": setkey(("nbits",), 4), "nbits-8": setkey(("nbits",), 8),
        "nbits-3": setkey(("nbits",), 3), "nbits-str": setkey(("nbits",), "2"), "nbits-bool": setkey(("nbits",), True),
        "dim-half": setkey(("dim",), m["dim"] // 2), "dim-double": setkey(("dim",), m["dim"] * 2),
        "dim-0": setkey(("dim",), 0), "dim-negative": setkey(("dim",), -m["dim"]),
        "n-centroids-plus-1": setkey(("n_centroids",), m["n_centroids"] + 1),
        "n-centroids-minus-1": setkey(("n_centroids",), m["n_centroids"] - 1),
        "n-centroids-double": setkey(("n_centroids",), m["n_centroids"] * 2),
        "n-centroids-0": setkey(("n_centroids",), 0),
        "codes-dtype-float": setkey(("codes_dtype",), "float32"),
        "codes-dtype-other": setkey(("codes_dtype",), "int64" if m["codes_dtype"] != "int64" else "uint8"),
        "codes-dtype-bogus": setkey(("codes_dtype",), "not-a-type"),
        "doc-id-kind-int": setkey(("doc_id_kind",), "int" if m["doc_id_kind"] == "str" else "str"),
        "doc-id-kind-bogus": setkey(("doc_id_kind",), "uuid"),
        "generation-null": setkey(("generation",), None),
        "files-list": setkey(("files",), []),
        "segments-object": setkey(("segments",), {}),
        "segments-number": setkey(("segments",), [42]),
        "segment-n-docs-plus-1": lambda d: d["segments"][0].update(n_docs=seg0["n_docs"] + 1),
        "segment-n-docs-minus-1": lambda d: d["segments"][0].update(n_docs=seg0["n_docs"] - 1),
        "segment-n-docs-str": lambda d: d["segments"][0].update(n_docs="many"),
        "segment-n-tokens-plus-1": lambda d: d["segments"][0].update(n_tokens=seg0["n_tokens"] + 1),
        "segment-n-tokens-minus-1": lambda d: d["segments"][0].update(n_tokens=seg0["n_tokens"] - 1),
        "segment-renamed": lambda d: d["segments"][0].update(name="s999999"),
        "segment-repeated": lambda d: d["segments"].append(dict(d["segments"][0])),
        "segment-without-name": lambda d: d["segments"][0].pop("name"),
        "file-entry-string": lambda d: d["files"].update({"centroids": "centroids.npy"}),
        "file-entry-without-sha": lambda d: d["files"]["centroids"].pop("sha256"),
        "file-entry-without-path": lambda d: d["files"]["centroids"].pop("path"),
        "file-shape-negative": lambda d: d["files"]["centroids"].update(shape=[-1, m["dim"]]),
        "assign-nprobe-0": setkey(("assign_nprobe",), 0), "assign-nprobe-str": setkey(("assign_nprobe",), "8"),
        "assign-nprobe-bool": setkey(("assign_nprobe",), True), "assign-nprobe-negative": setkey(("assign_nprobe",), -1),
        "assign-nprobe-missing": delkey("assign_nprobe"),
    }
    for key in ("generation", "files", "segments", "nbits", "dim", "n_centroids", "codes_dtype", "doc_id_kind",
                "build_config", "format", "format_version"):
        edits[f"missing-{key}"] = delkey(key)
    edits["database-entry-missing"] = lambda d: d["files"].pop("s000002/docs")
    edits["database-entry-kind"] = lambda d: d["files"]["s000001/docs"].update(kind="parquet")
    edits["database-entry-as-array"] = lambda d: d["files"]["s000001/docs"].pop("kind")
    for label, edit in edits.items():
        out.append(Case(f"manifest:{label}", edit_manifest(edit), mf))

    # sound SQLite databases that disagree with their segment (sizes and checksums updated to match)
    db = "s000001/docs"
    wrong = {
        "metadata-changed": ("UPDATE docs SET _metadata = '{\"i\": 99}' WHERE _position = 3",),
        "column-changed": ("UPDATE docs SET even = 1 - even WHERE _position = 4",),
        "row-deleted": ("DELETE FROM docs WHERE _position = 7",),
        "last-row-deleted": (f"DELETE FROM docs WHERE _position = {seg0['n_docs'] - 1}",),
        "row-added": (f"INSERT INTO docs(_position) VALUES ({seg0['n_docs']})",),
        "schema-version": ("PRAGMA user_version = 7",),
        "no-fulltext": ("DROP TABLE texts",),
        "table-dropped": ("DROP TABLE docs",),
    }
    for label, statements in wrong.items():
        out.append(Case(f"semantic:{db}:{label}", sql(db, *statements), (base[db],), may_differ=True))

    # file entries edited in the manifest: the message names the file and the manifest
    for name in ("s000001/codes", "s000001/residuals", "centroids", "s000002/doc_offsets"):
        shape = files[name]["shape"]
        both = (MANIFEST, base[name])
        grown = [shape[0] + 1, *shape[1:]]
        out.append(Case(f"manifest:{name}:shape", edit_manifest(
            lambda d, n=name, s=grown: d["files"][n].update(shape=s)), both))
        out.append(Case(f"manifest:{name}:dtype", edit_manifest(
            lambda d, n=name: d["files"][n].update(dtype="<f8" if d["files"][n]["dtype"] != "<f8" else "<i8")),
            both))
        out.append(Case(f"manifest:{name}:bytes", edit_manifest(
            lambda d, n=name: d["files"][n].update(bytes=d["files"][n]["bytes"] + 8)), both))
        out.append(Case(f"manifest:{name}:sha256", edit_manifest(
            lambda d, n=name: d["files"][n].update(sha256="0" * 64)), both))

    # paths that leave the index directory (each escape points at a valid copy, so that reading it would succeed)
    codes = "s000001/codes"
    escapes = {
        "parent": lambda r: (outside_copy(r, codes), f"../{r.name}-outside.npy")[1],
        "inner-parent": lambda r: (outside_copy(r, codes), f"{files[codes]['path'].split('/')[0]}/../../"
                                   f"{r.name}-outside.npy")[1],
        "absolute": lambda r: str(outside_copy(r, codes).resolve()),
        "dot": lambda r: f"./{files[codes]['path']}",
        "empty": lambda r: "",
        "directory": lambda r: files[codes]["path"].split("/")[0],
    }
    for label, make in escapes.items():
        out.append(Case(f"manifest:path-{label}", path_to(codes, make), mf))
    out.append(Case("symlink:file-outside", symlink_file(codes), (MANIFEST, base[codes])))
    out.append(Case("symlink:generation-outside", symlink_generation(codes), (MANIFEST, base[codes])))

    # semantic damage with size, shape, dtype and checksum updated to match
    n_codes = files["residual_scales"]["shape"][0]
    n1 = seg0["n_docs"]
    sem = {
        "s000001/codes": [("code-n-codes", setitem(3, n_codes)), ("code-max", setitem(0, np.iinfo(
            np.dtype(m["codes_dtype"])).max))],
        "s000001/doc_offsets": [("huge", setitem(n1 // 2, 2**31 - 1)), ("decreasing", setitem(n1 // 2, 1)),
                                ("end-plus-1", setitem(-1, seg0["n_tokens"] + 1)), ("start-1", setitem(0, 1)),
                                ("negative", setitem(n1 // 2, -5))],
        "s000001/residuals": [("half-width", lambda a: np.ascontiguousarray(a[:, : a.shape[1] // 2]))],
        "s000002/residuals": [("double-width", lambda a: np.concatenate([a, a], axis=1))],
        "s000001/deleted": [("value-2", setitem(1, 2)), ("value-255", setitem(0, 255))],
        "centroid_scales": [("nan", setitem(0, np.nan)), ("inf", setitem(-1, np.inf)), ("zero", setitem(1, 0.0)),
                            ("negative", setitem(2, -1.0))],
        "sub_centroids": [("nan", setitem((1, 1), np.nan))],
        "residual_scales": [("zero", setitem(0, 0.0)), ("nan", setitem(2, np.nan)), ("negative", setitem(1, -1.0))],
        "bucket_weights": [("nan", setitem((0, 0), np.nan))],
        "bucket_cutoffs": [("inf", setitem((1, 0), np.inf))],
        "s000001/meta_utf8": [("invalid-json", setitem(0, ord("x")))],
        "s000002/meta_utf8": [("not-an-object", lambda a: np.frombuffer(
            bytes(a).replace(b"{", b"[", 1).replace(b"}", b"]", 1), dtype=np.uint8).copy())],
        "s000001/texts_utf8": [("invalid-utf8", setitem(0, 0xFF)), ("continuation-byte", setitem(5, 0x80))],
        "s000001/texts_offsets": [("huge", setitem(2, 2**40)), ("decreasing", setitem(3, 0)),
                                  ("end-short", setitem(-1, 3))],
        "s000002/meta_offsets": [("huge", setitem(1, 2**40))],
        "s000001/doc_ids_utf8": [("invalid-utf8", setitem(0, 0xFF))],
        "s000001/doc_ids_offsets": [("huge", setitem(1, 2**40)), ("decreasing", setitem(2, 0))],
        "s000001/doc_ids_utf8#dup": [("duplicate-id", lambda a: dup_first_id(a))],
    }
    for name, edits_of in sem.items():
        real = name.split("#")[0]
        for label, change in edits_of:
            # duplicate ids can only be seen by verify; a plain search may differ
            subtle = label == "duplicate-id"
            out.append(Case(f"semantic:{real}:{label}", rewrite(real, change), (base[real],), may_differ=subtle))
    return out


def dup_first_id(a: np.ndarray) -> np.ndarray:
    """Ids are "d000", "d001", ...: the second becomes the first."""
    a = a.copy()
    a[4:8] = a[0:4]
    return a


# -------------------------------------------------------------------------------------------------- index
def build(path: Path):
    """A small index: string ids, texts and metadata, sub-centroids (the default), a two-level codebook (its coarse
    level stored), product codewords, two segments, deletions."""
    import pytest

    import gingham

    rng = np.random.default_rng(11)

    def docs(n, lo=3, hi=12):
        out = []
        for length in rng.integers(lo, hi, n):
            x = rng.standard_normal((int(length), 32)).astype(np.float32)
            out.append(x / np.linalg.norm(x, axis=1, keepdims=True))
        return out

    first, second = docs(60, 25, 40), docs(20)
    ids = [f"d{i:03d}" for i in range(80)]
    texts = [f"text é {i}" for i in range(80)]
    meta = [{"i": i, "even": i % 2 == 0} for i in range(80)]
    with pytest.MonkeyPatch.context() as mp:  # product codewords however little they gain on random tokens
        mp.setattr(gingham.codec.residual, "PQ_MIN_GAIN", -np.inf)
        ix = gingham.Index.create(path, first, ids[:60], texts=texts[:60], metadata=meta[:60], nbits=2,
                                  n_centroids=16, codec_sample=1_100, kmeans="two-level", assign_nprobe=2,
                                  sub_centroids=True)
    ix.add(second, ids[60:], texts=texts[60:], metadata=meta[60:])
    ix.delete(["d005", "d070"])
    assert ix.codec.sub_bits > 0, "the corruption suite needs the sub-centroid table"
    assert ix.codec.coarse is not None, "the corruption suite needs the coarse level of a two-level codebook"
    assert ix.codec.codewords is not None, "the corruption suite needs product codewords"
    queries = [d[:4] for d in first[:2] + second[:2]]
    return ix, queries


def search(root: Path, queries):
    import gingham

    ix = gingham.Index.open(root)
    res = ix.search(queries, top_k=5)
    # what an app reads with results: each one's text and metadata, and a search filtered on metadata
    shown = np.array([[f"{i}|{ix.text(i)}|{json.dumps(ix.metadata(i), sort_keys=True)}" if i is not None else "-"
                       for i in row] for row in res.ids])
    filtered = ix.search(queries, top_k=3, where=lambda m: bool(m.get("even")))
    # the segments' databases: a SQL filter and BM25 over the texts
    by_sql = ix.search(queries, top_k=3, where="even = ? AND i >= ?", params=[1, 10])
    lexical = ix.search_bm25(["text 7", "e 61"], top_k=3)
    return (np.concatenate([shown, filtered.ids.astype(str), by_sql.ids.astype(str)], axis=1),
            np.concatenate([res.scores, filtered.scores, by_sql.scores], axis=1),
            lexical.ids.astype(str), lexical.scores)


# -------------------------------------------------------------------------------------------------- worker
def outcome(run: Callable[[], object]) -> dict:
    import gingham

    try:
        value = run()
    except gingham.GinghamError as exc:
        return {"kind": "error", "type": type(exc).__name__, "message": str(exc)}
    except BaseException as exc:  # noqa: BLE001 - reported as an untyped failure of the case
        return {"kind": "untyped", "type": type(exc).__name__, "message": str(exc)}
    return {"kind": "ok", "value": value}


def run_case(case: Case, src: Path, scratch: Path, baseline) -> dict:
    import gingham

    root = scratch / case.name.replace("/", "_").replace(":", "-").replace("#", "-")
    shutil.copytree(src, root, symlinks=True)
    case.damage(root)
    queries = [baseline[f"q{i}"] for i in range(N_SEARCH_QUERIES)]

    def plain():
        ids, scores, lex_ids, lex_scores = search(root, queries)
        same = all(np.array_equal(a, baseline[k]) for a, k in ((ids, "ids"), (scores, "scores"),
                                                              (lex_ids, "lex_ids"), (lex_scores, "lex_scores")))
        return "same" if same else "differs"

    def verify():
        gingham.Index.open(root).verify()
        return "passed"

    return {"open": outcome(plain), "verify": outcome(verify)}


def main(argv: list[str]) -> int:
    src, baseline_path, scratch = Path(argv[0]), Path(argv[1]), Path(argv[2])
    baseline = dict(np.load(baseline_path, allow_pickle=False))
    by_name = {c.name: c for c in cases(src)}
    for name in argv[3:]:
        print(f"start {name}", flush=True)
        print(f"result {name} {json.dumps(run_case(by_name[name], src, scratch, baseline))}", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    sys.exit(main(sys.argv[1:]))
