"""SQL metadata filters over the segments' SQLite databases: equal to the Python predicate, injection-proof,
read-only, consistent through live updates, readable from format-2 indexes."""

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import gingham
from gingham.storage import disk as storage
from gingham.storage.docstore import filters
from gingham.storage.docstore.database import DocStore

# ------------------------------------------------------------------------------------ random metadata + filters
LANGS = ["en", "de", "fr", "zh", "O'Brien", "x\"y", ""]
FIELDS = {"lang": st.sampled_from(LANGS), "year": st.integers(1990, 2030),
          "score": st.floats(-5, 5, allow_nan=False, allow_infinity=False), "flag": st.booleans()}


@st.composite
def metadata_dicts(draw):
    out = {}
    for key, values in FIELDS.items():
        present = draw(st.sampled_from(["value", "value", "missing", "null"]))
        if present == "value":
            out[key] = draw(values)
        elif present == "null":
            out[key] = None
    return draw(st.sampled_from([out, out, out, None]))


def _cmp(op, a, b):
    if a is None or b is None:
        return None
    return {"=": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


@st.composite
def expressions(draw, depth=0):
    """(SQL text, params, reference) where reference(meta) is SQL's three-valued result (True/False/None)."""
    kind = draw(st.sampled_from(["cmp", "cmp", "null", "in", "between"] + (["and", "or", "not"] if depth < 3
                                                                              else [])))
    if kind in ("and", "or"):
        a, pa, fa = draw(expressions(depth + 1))
        b, pb, fb = draw(expressions(depth + 1))

        def ref(m, fa=fa, fb=fb, kind=kind):
            x, y = fa(m), fb(m)
            if kind == "and":
                return False if x is False or y is False else (None if x is None or y is None else True)
            return True if x is True or y is True else (None if x is None or y is None else False)
        return f"({a}) {kind.upper()} ({b})", pa + pb, ref
    if kind == "not":
        a, pa, fa = draw(expressions(depth + 1))
        return f"NOT ({a})", pa, lambda m, fa=fa: None if fa(m) is None else not fa(m)
    field = draw(st.sampled_from(sorted(FIELDS)))

    def get(m, field=field):
        v = (m or {}).get(field)
        return int(v) if isinstance(v, bool) else v
    if kind == "null":
        return f"{field} IS NULL", [], lambda m: get(m) is None
    if kind == "in":
        values = [int(v) if isinstance(v, bool) else v for v in draw(st.lists(FIELDS[field], min_size=1, max_size=3))]
        return (f"{field} IN ({', '.join('?' * len(values))})", values,
                lambda m: None if get(m) is None else get(m) in values)
    if kind == "between":
        lo, hi = sorted([draw(FIELDS[field]), draw(FIELDS[field])])
        lo, hi = (int(lo), int(hi)) if isinstance(lo, bool) else (lo, hi)
        return f"{field} BETWEEN ? AND ?", [lo, hi], lambda m: None if get(m) is None else lo <= get(m) <= hi
    op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]))
    value = draw(FIELDS[field])
    value = int(value) if isinstance(value, bool) else value
    return f"{field} {op} ?", [value], lambda m: _cmp(op, get(m), value)


@settings(max_examples=150, deadline=None)
@given(metas=st.lists(metadata_dicts(), min_size=1, max_size=40), expr=expressions(), scan_from=st.integers(1, 8))
def test_sql_filter_equals_the_python_predicate(metas, expr, scan_from):
    # every field in at least one document, so that every name in a filter is a column
    metas = metas + [{k: FIELDS_EXAMPLE[k] for k in FIELDS}]
    sql, params, ref = expr
    store = DocStore.in_memory(metas, None, len(metas), "test")
    expected = np.array([ref(m) is True for m in metas], dtype=np.uint8)
    # through SQLite's plan, and run again as a scan once more than `scan_from` rows came back
    for indexed_rows_min in (filters.INDEXED_ROWS_MIN, scan_from):
        mask = np.ones(len(metas), dtype=np.uint8)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(filters, "INDEXED_ROWS_MIN", indexed_rows_min)
            filters.allowed([store], [mask], sql, params)
        np.testing.assert_array_equal(mask, expected, err_msg=f"{sql} {params} (scan past {indexed_rows_min})")


FIELDS_EXAMPLE = {"lang": "en", "year": 2000, "score": 0.5, "flag": True}


# ------------------------------------------------------------------------------------------------ an index
@pytest.fixture()
def docs():
    rng = np.random.default_rng(5)
    out = []
    for n in rng.integers(3, 10, 160):
        x = rng.standard_normal((int(n), 32)).astype(np.float32)
        out.append(x / np.linalg.norm(x, axis=1, keepdims=True))
    return out


def meta(i: int) -> dict:
    return {"lang": ["en", "de", "fr"][i % 3], "year": 1990 + i % 37, "tags": [f"t{i % 5}"],
            "nested": {"n": i % 4}, **({"rare": True} if i % 17 == 0 else {})}


@pytest.fixture()
def index(tmp_path, docs):
    return gingham.Index.create(tmp_path / "ix", docs[:100], [f"d{i}" for i in range(100)],
                                texts=[f"text number {i}" for i in range(100)],
                                metadata=[meta(i) for i in range(100)], nbits=2, calibrate=False)


FILTERS = [
    ("lang = ? AND year >= ?", ["de", 2010], lambda m: m.get("lang") == "de" and m.get("year", 0) >= 2010),
    ("lang IN (?, ?) OR rare = 1", ["fr", "xx"], lambda m: m.get("lang") in ("fr", "xx") or m.get("rare") is True),
    ("rare IS NULL AND year < :y", {"y": 2000}, lambda m: "rare" not in m and m.get("year", 9999) < 2000),
    ("json_extract(_metadata, '$.nested.n') = ?", [2], lambda m: m.get("nested", {}).get("n") == 2),
    ("json_extract(tags, '$[0]') = ?", ["t3"], lambda m: (m.get("tags") or [None])[0] == "t3"),
    ("fresh = 1", None, lambda m: m.get("fresh") is True),
]


def check_filters(ix, queries, filters_=FILTERS):
    for sql, params, pred in filters_:
        snap = ix._snap
        by_sql = ix._masks(snap, None, sql, params)
        by_py = ix._masks(snap, None, lambda m, p=pred: bool(m) and p(m))
        for a, b in zip(by_sql, by_py):
            np.testing.assert_array_equal(a, b, err_msg=sql)
        r1 = ix.search(queries, top_k=5, where=sql, params=params)
        r2 = ix.search(queries, top_k=5, where=lambda m, p=pred: bool(m) and p(m))
        np.testing.assert_array_equal(r1.positions, r2.positions, err_msg=sql)
        np.testing.assert_array_equal(r1.scores, r2.scores, err_msg=sql)


def test_filters_equal_the_predicate_through_live_updates(index, docs, tmp_path):
    queries = [d[:4] for d in docs[:3]]
    index.add(docs[100:130], [f"d{i}" for i in range(100, 130)], texts=[f"new {i}" for i in range(100, 130)],
              metadata=[{**meta(i), "fresh": True} for i in range(100, 130)])
    check_filters(index, queries)
    index.upsert(docs[130:135], [f"d{i}" for i in range(5)], texts=["up"] * 5,
                 metadata=[{"lang": "de", "year": 2020, "fresh": True}] * 5)
    index.delete(["d7", "d8", "d101"])
    check_filters(index, queries)
    index.compact()
    assert len(index.manifest["segments"]) == 1
    check_filters(index, queries)
    index.rebuild(n_centroids=32)
    check_filters(index, queries)
    reopened = gingham.Index.open(tmp_path / "ix", verify=True)
    reopened.verify()
    check_filters(reopened, queries)
    assert all(f"{s['name']}/docs" in reopened.manifest["files"] for s in reopened.manifest["segments"])


def test_injection_through_a_value_is_impossible(index, docs, tmp_path):
    before = {k: v["sha256"] for k, v in index.manifest["files"].items()}
    attacks = ["en' OR '1'='1", "x'); DELETE FROM docs; --", "' OR 1=1 --", "en\" OR \"1\"=\"1", "%", "*"]
    for value in attacks:
        res = index.search(docs[0][:4], top_k=5, where="lang = ?", params=[value])
        assert (res.positions == -1).all(), value  # no document has that lang: nothing matches
        res = index.search(docs[0][:4], top_k=5, where="lang = :v OR year = :y", params={"v": value, "y": 1990})
        assert set(index.metadata(i)["year"] for i in res.ids[0] if i is not None) == {1990}
    again = gingham.Index.open(tmp_path / "ix", verify=True)
    assert {k: v["sha256"] for k, v in again.manifest["files"].items()} == before
    assert again.n_docs == 100


@pytest.mark.parametrize("expr", [
    "1); DELETE FROM docs; --",
    "lang = 'en'; DROP TABLE docs",
    "1) UNION SELECT 5 FROM (SELECT 1",
    "1 /* comment",
    "(SELECT count(*) FROM pragma_table_info('docs')) > 0",
    "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c) > 0",
    "load_extension('libc.so.6') IS NULL",
])
def test_a_filter_can_only_read(index, docs, tmp_path, expr):
    with pytest.raises(ValueError, match="where= filter"):
        index.search(docs[0][:4], top_k=5, where=expr)
    gingham.Index.open(tmp_path / "ix", verify=True).verify()


@pytest.mark.parametrize("where,params,match", [
    ("lang = ", None, "not a valid SQL expression.*fields are \\[.*'lang'"),
    ("language = ?", ["en"], "no such column: language"),
    ("lang = ?", None, "not a valid SQL expression"),  # a placeholder without a value
    ("lang = ?", ["en", "de"], "not a valid SQL expression"),
    ("lang = ?", "en", "params must be a list"),
    ("lang = ?", [["en"]], "parameters are str, int"),
    ("lang = 'unterminated", None, "unterminated quote"),
    ("", None, "SQL expression string or a callable"),
    (42, None, "SQL expression"),
    (lambda m: True, ["x"], "params= binds"),
])
def test_bad_filters_are_clear_value_errors(index, docs, where, params, match):
    with pytest.raises(ValueError, match=match):
        index.search(docs[0][:4], top_k=5, where=where, params=params)


@pytest.mark.parametrize("params,match", [
    ([2**70], r"filter parameter 0 is 1180591620717411303424, outside SQLite's 64-bit integer range"),
    ({"y": -(2**63) - 1}, r"filter parameter 'y' is .*outside SQLite's 64-bit integer range"),
    ([object()], "parameters are str, int, float, bytes or None"),
])
def test_parameters_sqlite_cannot_bind_are_value_errors(index, docs, params, match):
    """Issue 27.5: an int past 64 bits was an OverflowError from sqlite3 (a 500 over HTTP)."""
    with pytest.raises(ValueError, match=match):
        index.search(docs[0][:4], top_k=5, where="year = ?" if isinstance(params, list) else "year = :y",
                     params=params)


def test_numpy_scalars_are_parameters_like_python_numbers(index, docs):
    q = docs[0][:4]
    expected = index.search(q, top_k=20, where="year >= ? AND lang = ?", params=[2010, "de"]).positions
    for year in (np.int64(2010), np.int32(2010), np.uint16(2010), np.float64(2010.0), np.float32(2010.0)):
        got = index.search(q, top_k=20, where="year >= ? AND lang = ?", params=[year, np.str_("de")]).positions
        np.testing.assert_array_equal(got, expected, err_msg=type(year).__name__)
    rare = index.search(q, top_k=20, where="rare = :r", params={"r": np.bool_(True)}).ids[0]
    assert sorted(i for i in rare.tolist() if i is not None) == [f"d{i}" for i in range(0, 100, 17)]
    assert index.search(q, top_k=5, where="year = ?", params=[2**63 - 1]).positions.max() == -1  # in range


def test_a_format_2_index_is_read_and_migrated_on_its_first_write(index, docs, tmp_path):
    root = tmp_path / "ix"
    index.add(docs[100:110], [f"d{i}" for i in range(100, 110)], texts=["more"] * 10,
              metadata=[{**meta(i), "fresh": True} for i in range(100, 110)])
    queries = [d[:4] for d in docs[:3]]
    lexical = index.search_bm25("text number 42", top_k=5)
    path = root / storage.MANIFEST
    manifest = json.loads(path.read_text())
    for name in [k for k, v in manifest["files"].items() if v.get("kind") == "sqlite"]:
        (root / manifest["files"].pop(name)["path"]).unlink()
    manifest["format_version"] = 2
    path.write_text(json.dumps(manifest))

    old = gingham.Index.open(root, verify=True)
    old.verify()
    check_filters(old, queries)  # from databases built in memory
    np.testing.assert_array_equal(old.search_bm25("text number 42", top_k=5).positions, lexical.positions)
    old.delete(["d3"])
    new = json.loads(path.read_text())
    assert new["format_version"] == storage.FORMAT_VERSION == 5
    assert all(new["files"][f"{s['name']}/docs"]["kind"] == "sqlite" for s in new["segments"])
    migrated = gingham.Index.open(root, verify=True)
    migrated.verify()
    check_filters(migrated, queries)


def test_keys_that_cannot_be_columns_stay_reachable_through_json(tmp_path, docs):
    metas = [{"Lang": "en", "lang": "de", "_position": 3, "rowid": 1, "a b": i, 'q"uote': i % 2}
             for i in range(20)]
    ix = gingham.Index.create(tmp_path / "ix", docs[:20], metadata=metas, nbits=2, calibrate=False)
    q = docs[0][:4]

    def hits(where, params=None):
        return sorted(i for i in ix.search(q, top_k=20, where=where, params=params).ids[0].tolist() if i >= 0)
    assert hits('"a b" < ?', [5]) == [0, 1, 2, 3, 4]
    assert hits('"q""uote" = 1') == list(range(1, 20, 2))
    assert hits("Lang = 'en'") == list(range(20))  # Lang and lang are one SQL name: the first key
    assert hits("json_extract(_metadata, '$.lang') = 'de'") == list(range(20))
    assert hits("json_extract(_metadata, '$._position') = 3") == list(range(20))
    assert hits("_position < 2") == [0, 1]  # the reserved name is the document's position
