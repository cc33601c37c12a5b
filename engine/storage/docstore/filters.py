"""``where=`` as a SQL expression over metadata fields, resolved to the documents it allows, segment by segment.

The expression is the WHERE clause of a SELECT over ``docs`` (see :mod:`gingham.storage.docstore.database`): metadata
keys are columns (``lang = ? AND year >= ?``), ``_metadata`` is the whole object as JSON
(``json_extract(_metadata, '$.tags[0]') = ?``). Values come in ``params`` (a list for ``?``, a dict for
``:name``) and are bound by SQLite, never formatted into the statement, so a value cannot change the statement.

Only reading is possible through a filter: the database is opened read-only, the expression must be one
parenthesis-balanced expression without ``;`` or comments (so it cannot close the WHERE clause and append a
statement), an authorizer allows only SELECT, reading and functions while it runs (no PRAGMA, ATTACH, writes or
recursive queries), and it is stopped after :data:`TIME_LIMIT_S` seconds.

The time limit holds however costly each row is. SQLite checks it every :data:`PROGRESS_STEPS` steps of its
virtual machine, never inside one function call; so the work of one call is bounded too: no value a filter reads,
binds or builds (``randomblob(?)``, ``zeroblob(?)``, ``replace``, ``group_concat``) may exceed
:func:`value_limit` bytes, the longest stored metadata object but at least :data:`VALUE_BYTES_MIN`, and
``printf`` / ``format``, whose run time grows with a precision argument past that limit, are refused. The costliest
calls are then ``instr`` and ``replace``, quadratic in their arguments' lengths: about 20 ms each at 64 KiB, so a
filter stops within about a second of its deadline on metadata under 64 KiB (longer stored values raise the bound).
(Python 3.10 cannot set the length limit; there the functions that build longer values than they are given,
``randomblob``, ``zeroblob``, ``replace``, ``group_concat`` and the JSON aggregates, are refused instead.)
A filter runs on a connection of its own (:meth:`DocStore.connection`): a slow one holds up no other search.
"""

from __future__ import annotations

import numbers
import sqlite3
import time
from typing import Any, Mapping, Sequence

import numpy as np

from gingham.storage.docstore.database import DAMAGE, ENVIRONMENT, INT64, DocStore, error_code, quote

#: Seconds a filter may run (per search call) before it is stopped with a ValueError.
TIME_LIMIT_S = 30.0
#: Steps of SQLite's virtual machine between two checks of the time limit. A row of a simple filter takes 4-5
#: steps; checking every 100 steps costs nothing measurable (200,000 rows, 20 ms with or without), every 10
#: about half as much again.
PROGRESS_STEPS = 100
#: Bytes a value in a filter may hold, at least (see :func:`value_limit`).
VALUE_BYTES_MIN = 1 << 16
#: A filter that selects more than max(INDEXED_ROWS_MIN, documents / INDEXED_SHARE) documents of a segment
#: through SQLite's plan is run again as a table scan (see ``_run``).
INDEXED_ROWS_MIN = 1_000
INDEXED_SHARE = 50
_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION}
#: Functions a filter may not call, and why.
REFUSED_FUNCTIONS = {
    # SQLite 3.40's printf repeats a character (%.*c) once per unit of precision, past the length limit too:
    # printf('%.*c', 1000000000, 'x') runs 13 s in one call, where no time check can stop it
    "printf": "its run time grows with its precision argument, past any limit",
    "format": "its run time grows with its precision argument, past any limit",
}
#: Python 3.10 cannot set SQLite's length limit (``Connection.setlimit`` is 3.11+); there a filter may not call
#: the functions that build a value longer than their arguments instead.
_CAN_LIMIT = hasattr(sqlite3.Connection, "setlimit")
_BUILDERS = {"randomblob", "zeroblob", "replace", "group_concat", "string_agg", "json_group_array",
             "json_group_object"}
#: SQLite result codes that mean a damaged database file rather than a bad expression.
INTERRUPT = 9  # SQLITE_INTERRUPT: the progress handler stopped a filter past its deadline
_TOOBIG = 18  # SQLITE_TOOBIG: a string or blob past SQLITE_LIMIT_LENGTH
HOW = ("write a SQL expression over the metadata fields, with values as ? placeholders and params= holding them, "
       "for example where=\"lang = ? AND year >= ?\", params=[\"en\", 2020]")


def _value(key: int | str, v: Any) -> Any:
    """Filter parameter ``key`` as SQLite binds it: str, bytes, None, an int in SQLite's 64-bit range (numpy
    integers and bools as ints) or a float (numpy floats too)."""
    if v is None or isinstance(v, (str, bytes)):
        return v
    if isinstance(v, (bool, np.bool_, numbers.Integral)):
        v = int(v)
        if not INT64[0] <= v <= INT64[1]:
            raise ValueError(f"filter parameter {key!r} is {v}, outside SQLite's 64-bit integer range "
                             f"[-2**63, 2**63 - 1]; pass it as a float (approximate) or compare it as a string")
        return v
    if isinstance(v, numbers.Real):
        return float(v)
    raise ValueError(f"filter parameter {key!r} is {v!r}, a {type(v).__name__}; parameters are str, int, float, "
                     "bytes or None (numpy scalars too)")


def check_expression(expr: Any, params: Any) -> list | dict | None:
    """Raise ValueError unless ``expr`` is one SQL expression (see the module's docstring) and ``params`` a
    list/tuple of values or a dict of named values; return ``params`` as SQLite binds them (see ``_value``)."""
    if not isinstance(expr, str) or not expr.strip():
        raise ValueError(f"where= must be a SQL expression string or a callable, got {expr!r}; {HOW}")
    if params is not None and not isinstance(params, (list, tuple, Mapping)):
        raise ValueError(f"params must be a list of values (for ?) or a dict (for :name), got "
                         f"{type(params).__name__}; {HOW}")
    if isinstance(params, Mapping):
        params = {k: _value(k, v) for k, v in params.items()}
    elif params is not None:
        params = [_value(i, v) for i, v in enumerate(params)]
    depth, i, n = 0, 0, len(expr)
    while i < n:
        c = expr[i]
        if c in "'\"`[":
            close = "]" if c == "[" else c
            j = expr.find(close, i + 1)
            while j != -1 and close != "]" and expr[j + 1:j + 2] == close:  # doubled quote: an escaped one
                j = expr.find(close, j + 2)
            if j == -1:
                raise ValueError(f"where= filter {expr!r} has an unterminated quote starting at character {i}; {HOW}")
            i = j + 1
            continue
        if c == ";" or expr.startswith("--", i) or expr.startswith("/*", i):
            what = "a ';'" if c == ";" else "an SQL comment"
            raise ValueError(f"where= filter {expr!r} contains {what} at character {i}: a filter is one expression; "
                             f"{HOW}")
        depth += (c == "(") - (c == ")")
        if depth < 0:
            raise ValueError(f"where= filter {expr!r} closes a parenthesis it did not open (character {i}); {HOW}")
        i += 1
    if depth:
        raise ValueError(f"where= filter {expr!r} leaves {depth} parenthesis open; {HOW}")
    return params


def _authorizer(refused: list[str]):
    """SQLite's authorizer for a filter; notes in ``refused`` the functions it refuses, and why."""
    def authorize(action, arg1, arg2, db, source):
        if action == sqlite3.SQLITE_FUNCTION:
            name = (arg2 or "").lower()
            if name in REFUSED_FUNCTIONS:
                refused.append(f"{name}(): {REFUSED_FUNCTIONS[name]}")
                return sqlite3.SQLITE_DENY
            if not _CAN_LIMIT and name in _BUILDERS:
                refused.append(f"{name}(): it builds values longer than it is given, and this Python (3.10) "
                               "cannot bound their length")
                return sqlite3.SQLITE_DENY
        if action in _ALLOWED:
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY
    return authorize


def value_limit(stores: Sequence[DocStore]) -> int:
    """The most bytes a value in a filter over ``stores`` may hold: their longest stored metadata object (as
    JSON; no column value is longer), so every stored value can be read, but at least VALUE_BYTES_MIN."""
    return max([VALUE_BYTES_MIN] + [store.value_bytes() for store in stores])


def _check_lengths(params, limit: int) -> None:
    items = params.items() if isinstance(params, Mapping) else enumerate(params or ())
    for key, v in items:
        if isinstance(v, (str, bytes)) and (len(v) > limit or len(v.encode() if isinstance(v, str) else v) > limit):
            raise ValueError(f"filter parameter {key!r} holds more than {limit} bytes, the most a value in a filter "
                             "may hold on this index (its longest stored metadata value, at least "
                             f"{VALUE_BYTES_MIN}); no stored value is that long, so compare a shorter one")


def allowed(stores: Sequence[DocStore], masks: Sequence[np.ndarray], expr: str,
            params: Sequence | Mapping | None) -> None:
    """Clear in each segment's uint8 ``masks`` (in place) the documents that ``expr`` does not select."""
    params = check_expression(expr, params)
    limit = value_limit(stores)
    _check_lengths(params, limit)
    union: dict[str, str] = {}  # SQLite matches identifiers regardless of ASCII case
    for store in stores:
        for c in store.columns:
            union.setdefault(c.lower(), c)
    deadline = time.monotonic() + TIME_LIMIT_S
    for store, mask in zip(stores, masks):
        have = {c.lower() for c in store.columns}
        missing = [c for k, c in union.items() if k not in have]
        def select(table: str) -> str:
            source = table
            if missing:  # a key no document of this segment has: NULL here, as for documents that lack it
                cols = ", ".join(["_position", "_metadata"] + [quote(c) for c in store.columns]
                                 + [f"NULL AS {quote(c)}" for c in missing])
                source = f"(SELECT {cols} FROM {table})"
            return f"SELECT _position FROM {source} WHERE (\n{expr}\n)"

        positions = _run(store, select("docs"), select("docs NOT INDEXED"), expr, params, deadline, limit,
                         sorted(union.values()), max(INDEXED_ROWS_MIN, len(mask) // INDEXED_SHARE))
        keep = np.zeros(len(mask), dtype=np.uint8)
        keep[positions[(positions >= 0) & (positions < len(mask))]] = 1
        mask &= keep


def _run(store: DocStore, sql: str, scan_sql: str, expr: str, params, deadline: float, limit: int,
         fields: list[str], indexed_rows: int) -> np.ndarray:
    """Positions selected by ``sql``; past ``indexed_rows`` rows, by ``scan_sql`` (the same without indexes).

    SQLite plans a range over an indexed column (``year >= ?``) through the index whatever the range's width
    (this build has no STAT4 statistics), then reads the table row by row for the rest of the expression: at
    100,000 documents and a filter keeping half of them, 50 ms against 18 ms for a plain scan. A filter that
    has returned ``indexed_rows`` rows through its plan is broad, and is run again as a scan."""
    args = params if params is not None else ()
    with store.connection() as conn:
        refused: list[str] = []
        conn.set_authorizer(_authorizer(refused))
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), PROGRESS_STEPS)
        length = conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limit) if _CAN_LIMIT else None
        try:
            cursor = conn.execute(sql, args)
            rows = cursor.fetchmany(indexed_rows)
            if len(rows) == indexed_rows:
                cursor.close()
                rows = conn.execute(scan_sql, args).fetchall()
        except sqlite3.Error as exc:
            code = error_code(exc)
            if code in DAMAGE or code in ENVIRONMENT - {INTERRUPT}:
                raise store.failure(exc, "be read") from exc
            if "interrupted" in str(exc):
                raise ValueError(f"where= filter {expr!r} ran longer than {TIME_LIMIT_S:g} s and was stopped; "
                                 "simplify it") from exc
            if code == _TOOBIG:
                raise ValueError(f"where= filter {expr!r} makes a value longer than {limit} bytes, the most a "
                                 "value in a filter may hold on this index (its longest stored metadata value, at "
                                 f"least {VALUE_BYTES_MIN}); compare the stored values instead of building large "
                                 "ones") from exc
            if refused:
                raise ValueError(f"where= filter {expr!r} calls {refused[0]}; a filter may not call it") from exc
            if "not authorized" in str(exc):
                raise ValueError(f"where= filter {expr!r} tries something a filter may not do ({exc}): a filter "
                                 f"only reads; {HOW}") from exc
            raise ValueError(f"where= filter {expr!r} is not a valid SQL expression over this index's metadata "
                             f"({exc}); its fields are {fields[:50]} (and _metadata, the JSON object); {HOW}") \
                from exc
        finally:
            if length is not None:
                conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, length)
            conn.set_authorizer(None)
            conn.set_progress_handler(None, 0)
    return np.fromiter((r[0] if isinstance(r[0], int) else -1 for r in rows), dtype=np.int64, count=len(rows))
