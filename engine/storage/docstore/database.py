"""One SQLite database per segment: its documents' metadata as columns, and a full-text index of their texts.

A segment's database is written once, into the generation that writes the segment, and never changes (like the
segment's arrays): it is fsynced, listed in the manifest with its size and sha256, and published by the same atomic
manifest replace. Deletions stay in the segment's deletion mask. So a crash leaves the database of the committed
state, and a reader opens it read-only and immutable (no locks, no journal).

Schema (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`)::

    docs(_position INTEGER PRIMARY KEY,   -- the document's position in its segment
         _metadata TEXT,                  -- the metadata object as JSON (NULL: none), for json_extract
         "<key>", ...)                    -- one column per top-level metadata key (see column_names)
    texts USING fts5(text, content='', tokenize='unicode61 remove_diacritics 2')   -- only when texts are stored

Each metadata key is a column holding the value as SQLite stores it natively: str as TEXT, int as INTEGER,
float as REAL, bool as 0/1, null (or absent) as NULL, lists and objects as JSON text. Columns rather than
``json_extract`` on every row: a filter then reads typed values, and a selective one uses the column's index.

The full-text index is contentless (the texts stay in the segment's arrays), tokenised by unicode61 with
diacritics removed (``é`` matches ``e``). Not trigram: trigram finds substrings (useful for CJK, which unicode61
does not split into words) but scores every 3-character window, which is a poor BM25 for the languages with spaces.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import urllib.parse
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from gingham.common.errors import IndexCorruptError

SCHEMA_VERSION = 1
TOKENIZER = "unicode61 remove_diacritics 2"
#: Columns of ``docs`` that are not metadata keys (SQLite's names for the rowid are reserved too).
RESERVED = ("_position", "_metadata", "rowid", "_rowid_", "oid")
#: At most this many metadata keys become columns (more are reachable through ``json_extract(_metadata, ...)``).
MAX_COLUMNS = 1000
#: Columns that get an index (the first ones, in column order).
MAX_INDEXED = 64
INT64 = (-(2**63), 2**63 - 1)
FIX = "restore the index from a backup or rebuild it"
#: Idle extra connections a store keeps for concurrent readers (see :meth:`DocStore.connection`).
MAX_SPARE = 4


def column_names(keys: Iterable[str]) -> list[str]:
    """The metadata keys that become columns, in sorted order: all but reserved names, keys equal to an earlier
    one but for ASCII case (SQLite's identifiers ignore it), keys holding NUL, and keys past MAX_COLUMNS."""
    out, seen = [], {r.lower() for r in RESERVED}
    for key in sorted(set(keys)):
        folded = key.lower()
        if folded in seen or "\x00" in key or not key:
            continue
        seen.add(folded)
        out.append(key)
        if len(out) == MAX_COLUMNS:
            break
    return out


def quote(name: str) -> str:
    """``name`` as a SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def sql_value(value: Any) -> Any:
    """A metadata value as SQLite stores it (see the module's docstring)."""
    if value is None or isinstance(value, (str, float)):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if INT64[0] <= value <= INT64[1] else str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def write(path: Path, metadata: Sequence[Mapping | None] | None, texts: Iterable[str] | None, n_docs: int) -> None:
    """Create the database of a segment of ``n_docs`` documents at ``path`` (a new file)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        _populate(conn, metadata, texts, n_docs)
    finally:
        conn.close()


def _populate(conn: sqlite3.Connection, metadata, texts, n_docs: int) -> None:
    """Write the schema and rows into an empty database."""
    metadata = list(metadata) if metadata is not None else [None] * n_docs
    columns = column_names(k for m in metadata if m for k in m)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    cols = "".join(f", {quote(c)}" for c in columns)
    conn.execute(f"CREATE TABLE docs (_position INTEGER PRIMARY KEY, _metadata TEXT{cols})")
    conn.execute("BEGIN")
    marks = ", ".join("?" * (2 + len(columns)))
    conn.executemany(f"INSERT INTO docs VALUES ({marks})", (
        (pos, None if m is None else json.dumps(m, ensure_ascii=False, sort_keys=True),
         *(sql_value(m.get(c)) if m else None for c in columns))
        for pos, m in enumerate(metadata)))
    for i, c in enumerate(columns[:MAX_INDEXED]):
        conn.execute(f"CREATE INDEX ix{i} ON docs({quote(c)})")
    if texts is not None:
        conn.execute(f"CREATE VIRTUAL TABLE texts USING fts5(text, content='', tokenize='{TOKENIZER}')")
        conn.executemany("INSERT INTO texts(rowid, text) VALUES (?, ?)", enumerate(texts))
        conn.execute("INSERT INTO texts(texts) VALUES ('optimize')")
    conn.execute("COMMIT")


class DocStore:
    """A segment's database, opened read-only. Thread-safe: a statement runs on a connection it has to itself
    (:meth:`connection`; a filter or a BM25 query runs once per search call, not per query vector)."""

    def __init__(self, conn: sqlite3.Connection, where: str, n_docs: int, path: Path | None = None):
        self.conn, self.where, self.n_docs = conn, where, n_docs
        self.lock = threading.Lock()  # held while self.conn runs a statement
        self._path, self._identity = path, _identity(path) if path is not None else None
        self._spare: list[sqlite3.Connection] = []
        self._spare_lock = threading.Lock()
        self._value_bytes: int | None = None
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            info = conn.execute("PRAGMA table_info(docs)").fetchall()
            self.has_texts = conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'texts' AND type = 'table'").fetchone()[0] == 1
            top = conn.execute("SELECT max(_position) FROM docs").fetchone()[0]
        except sqlite3.Error as exc:
            raise self.failure(exc, "be read as a segment database", schema=True) from exc
        if version != SCHEMA_VERSION or [r[1] for r in info[:2]] != ["_position", "_metadata"]:
            raise self.corrupt(f"has schema version {version} and columns {[r[1] for r in info[:4]]}, expected "
                               f"version {SCHEMA_VERSION} with _position, _metadata first")
        if (top if top is not None else -1) != n_docs - 1:
            raise self.corrupt(f"holds documents up to position {top}, but its segment has {n_docs}")
        self.columns = [r[1] for r in info[2:]]

    @classmethod
    def open(cls, path: Path, n_docs: int) -> "DocStore":
        """Open the database file at ``path`` read-only (``immutable``: it never changes once committed). The
        file stays open, so a reader keeps it after a writer removes a superseded generation."""
        before = _identity(path)
        try:
            conn = _connect(path)
        except sqlite3.Error as exc:
            raise failure(exc, f"index file {path}", "be opened as a SQLite database", path) from exc
        store = cls(conn, f"index file {path}", n_docs, path)
        if store._identity != before:  # replaced while opening (never, in practice): no spares
            store._identity = None
        return store

    @classmethod
    def in_memory(cls, metadata, texts, n_docs: int, name: str) -> "DocStore":
        """The database of a segment written before databases existed (format 1 or 2), built from its arrays."""
        conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        _populate(conn, metadata, texts, n_docs)
        return cls(conn, f"segment {name} (built in memory)", n_docs)

    def corrupt(self, what: str) -> IndexCorruptError:
        return IndexCorruptError(f"{self.where} {what}; {FIX}")

    def failure(self, exc: sqlite3.Error, doing: str, schema: bool = False) -> Exception:
        """The error to raise for ``exc``, raised by SQLite while ``doing``: see :func:`failure`."""
        return failure(exc, self.where, doing, self._path, schema)

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """A connection to this database that no other thread uses meanwhile: the store's own when it is free,
        else an idle spare, else a new spare opened on the same file, so that a slow filter (up to
        :data:`gingham.storage.docstore.filters.TIME_LIMIT_S`) holds up no other search. A database built in memory, or
        one whose file a writer has removed since (a reader keeps what it opened), has only its own connection:
        then this waits for it."""
        if self.lock.acquire(blocking=False):
            try:
                yield self.conn
            finally:
                self.lock.release()
            return
        spare = self._take_spare()
        if spare is None:
            with self.lock:
                yield self.conn
            return
        try:
            yield spare
        finally:
            with self._spare_lock:
                if len(self._spare) < MAX_SPARE:
                    self._spare.append(spare)
                    spare = None
            if spare is not None:
                spare.close()

    def _take_spare(self) -> sqlite3.Connection | None:
        with self._spare_lock:
            if self._spare:
                return self._spare.pop()
        if self._identity is None:
            return None
        try:
            conn = _connect(self._path)
        except (sqlite3.Error, OSError):
            return None
        try:
            conn.execute("PRAGMA user_version").fetchone()  # reads the header: the file is open from here on
        except sqlite3.Error:
            conn.close()
            return None
        # the same file, not another at the same path: this store's connection keeps its file open, so no other
        # file can have its identity (device, inode) while the store lives
        if _identity(self._path) != self._identity:
            conn.close()
            return None
        return conn

    def value_bytes(self) -> int:
        """Bytes of the longest stored metadata object (as JSON): no column value is longer."""
        if self._value_bytes is None:
            with self.connection() as conn:
                try:
                    top = conn.execute("SELECT max(length(CAST(_metadata AS BLOB))) FROM docs").fetchone()[0]
                except sqlite3.Error as exc:
                    raise self.failure(exc, "be read") from exc
            self._value_bytes = int(top or 0)
        return self._value_bytes

    def check(self, metadata_json: Sequence[str | None], has_texts: bool) -> None:
        """For verify: SQLite's own check of every page, then one row per document whose metadata (JSON and
        columns) equals the segment's stored ``metadata_json`` (None: none), and a full-text index iff the segment
        stores texts. Raises :class:`IndexCorruptError` naming the file."""
        cols = ", ".join(["_position", "_metadata"] + [quote(c) for c in self.columns])
        try:
            with self.lock:
                result = self.conn.execute("PRAGMA integrity_check").fetchall()
                rows = self.conn.execute(f"SELECT {cols} FROM docs ORDER BY _position").fetchall()
        except sqlite3.Error as exc:
            if error_code(exc) in ENVIRONMENT:
                raise self.failure(exc, "be checked") from exc
            raise self.corrupt(f"fails SQLite's integrity check ({exc})") from exc
        if result != [("ok",)]:
            raise self.corrupt(f"fails SQLite's integrity check ({result[:3]})")
        if len(rows) != len(metadata_json) or any(r[0] != i for i, r in enumerate(rows)):
            raise self.corrupt(f"holds {len(rows)} documents (or skips a position) for a segment of "
                               f"{len(metadata_json)}")
        if has_texts != self.has_texts:
            raise self.corrupt("has a full-text index but its segment stores no texts" if self.has_texts
                               else "lacks the full-text index of its segment's texts")
        for i, (row, text) in enumerate(zip(rows, metadata_json)):
            m = None if text is None else json.loads(text)
            if row[1] != (None if m is None else text) or any(v != (sql_value(m.get(c)) if m else None)
                                     for c, v in zip(self.columns, row[2:])):
                raise self.corrupt(f"holds metadata for document {i} that differs from the segment's")



#: SQLite's primary result codes that mean the file's bytes are wrong: SQLITE_CORRUPT, SQLITE_FORMAT, SQLITE_NOTADB.
DAMAGE = frozenset({11, 24, 26})
#: Codes that say nothing about the file's bytes but about this process or machine at this moment: SQLITE_PERM,
#: SQLITE_BUSY, SQLITE_LOCKED, SQLITE_NOMEM, SQLITE_READONLY, SQLITE_INTERRUPT, SQLITE_IOERR, SQLITE_FULL,
#: SQLITE_CANTOPEN (of a file that is there: out of file descriptors, say), SQLITE_PROTOCOL.
ENVIRONMENT = frozenset({3, 5, 6, 7, 8, 9, 10, 13, 14, 15})
_NOMEM, _CANTOPEN, _ERROR = 7, 14, 1


def error_code(exc: sqlite3.Error) -> int | None:
    """SQLite's primary result code of ``exc`` (None when the exception does not carry one)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def failure(exc: sqlite3.Error, where: str, doing: str, path: Path | None = None, schema: bool = False) -> Exception:
    """The error to raise for ``exc``, raised by SQLite while ``doing`` on the database ``where`` (at ``path``).

    Corruption is reported only for bytes that are wrong: SQLite's damage codes, a file that is missing, and, with
    ``schema`` (statements of our own that only a database of another shape fails), SQLITE_ERROR. A failure of the
    moment (out of file descriptors or memory, an I/O error, a full disk) is an ``OSError`` (``MemoryError``) that
    says the index is not damaged, so that a reader never sees a false :class:`IndexCorruptError`."""
    code = error_code(exc)
    missing = path is not None and code == _CANTOPEN and not os.path.exists(path)
    if code in DAMAGE or missing or (schema and code == _ERROR):
        return IndexCorruptError(f"{where} cannot {doing} ({'the file is missing' if missing else exc}); {FIX}")
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    what = (f"{where} could not {doing} ({name}: {exc}); this is not damage to the index but a failure of the "
            "moment (open files, memory, disk): check the process's limits (ulimit -n), memory and disk, then retry")
    return MemoryError(what) if code == _NOMEM else OSError(what)


def _connect(path: Path) -> sqlite3.Connection:
    """A read-only, immutable connection to the database file at ``path``."""
    uri = f"file:{urllib.parse.quote(str(path))}?mode=ro&immutable=1"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
    try:
        conn.execute("PRAGMA cell_size_check=ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
