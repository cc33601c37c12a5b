"""A segment database's SQLite errors: corruption only for bytes that are wrong (issue 27, item 3).

A failure of the moment (out of file descriptors, memory, an I/O error) is an OSError or MemoryError that says the
index is not damaged; SQLite's damage codes, a missing file and a database of another shape are IndexCorruptError.
"""

from __future__ import annotations

import os
import resource
import sqlite3

import numpy as np
import pytest

import gingham
from gingham.common.errors import IndexCorruptError
from gingham.storage.docstore.database import DocStore, failure


def _error(code: int, name: str) -> sqlite3.Error:
    exc = sqlite3.OperationalError(f"{name.lower()} raised by the test")
    exc.sqlite_errorcode, exc.sqlite_errorname = code, name
    return exc


@pytest.mark.parametrize("code, name, kind", [
    (11, "SQLITE_CORRUPT", IndexCorruptError),
    (26, "SQLITE_NOTADB", IndexCorruptError),
    (24, "SQLITE_FORMAT", IndexCorruptError),
    (10 | (1 << 8), "SQLITE_IOERR_READ", OSError),  # an extended code: its primary code decides
    (7, "SQLITE_NOMEM", MemoryError),
    (13, "SQLITE_FULL", OSError),
    (5, "SQLITE_BUSY", OSError),
    (14, "SQLITE_CANTOPEN", OSError),  # of a file that is there
])
def test_each_sqlite_code_gets_the_error_that_its_cause_deserves(tmp_path, code, name, kind):
    there = tmp_path / "there.db"
    there.write_bytes(b"")
    got = failure(_error(code, name), "the test's database", "be read", there)
    assert type(got) is kind
    if kind is not IndexCorruptError:
        assert "not damage to the index" in str(got) and name in str(got)


def test_sqlite_error_is_corruption_only_for_our_own_schema_statements(tmp_path):
    exc = _error(1, "SQLITE_ERROR")
    assert isinstance(failure(exc, "db", "be read", schema=True), IndexCorruptError)
    assert type(failure(exc, "db", "be read")) is OSError


def test_a_missing_file_is_corruption(tmp_path):
    with pytest.raises(IndexCorruptError, match="missing"):
        DocStore.open(tmp_path / "gone.db", 3)


def test_garbage_bytes_and_a_foreign_database_are_corruption(tmp_path):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(np.random.default_rng(0).bytes(8192))
    with pytest.raises(IndexCorruptError):
        DocStore.open(garbage, 3)
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE other(x)")
    conn.commit()
    conn.close()
    with pytest.raises(IndexCorruptError, match="segment database"):
        DocStore.open(foreign, 3)


def _small_index(path):
    rng = np.random.default_rng(0)
    docs = [rng.standard_normal((5, 16)).astype(np.float32) for _ in range(30)]
    gingham.Index.create(path, docs, [f"d{i}" for i in range(30)], nbits=2,
                         metadata=[{"topic": "ab"[i % 2]} for i in range(30)])


def test_out_of_file_descriptors_is_not_reported_as_corruption(tmp_path):
    """Many readers at once can exhaust the process's file descriptors: opening an index then must say so, not call
    an intact index corrupt (it did before: any SQLite error was IndexCorruptError)."""
    _small_index(tmp_path / "ix")
    db = next((tmp_path / "ix").rglob("*.docs.sqlite"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 512), hard))
    try:
        try:
            while True:
                held.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
        with pytest.raises(OSError, match="ulimit") as info:
            DocStore.open(db, 30)
        assert not isinstance(info.value, IndexCorruptError)
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    # with descriptors back, the same file opens and reads
    store = DocStore.open(db, 30)
    assert store.columns == ["topic"]
