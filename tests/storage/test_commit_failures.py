"""A commit that fails (disk full, a value JSON cannot hold) leaves the index as it was, and nothing behind."""

from __future__ import annotations

import errno
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import gingham
from gingham.storage import disk as storage

sys.path.insert(0, str(Path(__file__).parent))
from crash_worker import doc  # noqa: E402


def entries(path: Path) -> set[str]:
    return {p.name for p in path.iterdir()}


@pytest.fixture
def index(tmp_path):
    return gingham.Index.create(tmp_path / "ix", [doc(i) for i in range(12)], [f"d{i}" for i in range(12)])


def test_disk_full_while_writing_the_manifest_leaves_no_temporary_file(index, monkeypatch):
    before, manifest = entries(index.path), (index.path / storage.MANIFEST).read_bytes()
    real_fsync = storage.os.fsync

    def full(fd):  # the data files fit; the temporary manifest does not
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(storage.os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        index.add([doc(99)], ["new"])
    monkeypatch.setattr(storage.os, "fsync", real_fsync)
    assert entries(index.path) == before  # no .manifest.json.*.tmp, no new generation directory
    assert (index.path / storage.MANIFEST).read_bytes() == manifest
    again = gingham.Index.open(index.path, verify=True)
    assert "new" not in again and len(again) == 12
    again.add([doc(99)], ["new"])  # and the next write works
    assert "new" in gingham.Index.open(index.path)


def test_disk_full_while_replacing_the_manifest(index, monkeypatch):
    before = entries(index.path)

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage.os, "replace", full)
    with pytest.raises(OSError):
        index.delete(["d1"])
    monkeypatch.undo()
    assert entries(index.path) == before
    assert "d1" in gingham.Index.open(index.path, verify=True)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_manifest_never_holds_non_standard_json(index, value):
    """A value JSON cannot represent is refused at commit time, before anything is published."""
    before = (index.path / storage.MANIFEST).read_bytes()

    def change(snap, writer, manifest):
        manifest["codec_mse"] = value

    with pytest.raises(ValueError, match="JSON cannot represent"):
        index._write(change)
    assert (index.path / storage.MANIFEST).read_bytes() == before
    assert [p for p in index.path.iterdir() if p.name.endswith(".tmp")] == []
    json.loads(before, parse_constant=lambda c: pytest.fail(f"manifest holds {c}"))


def test_float64_beyond_float32_never_reaches_the_manifest(index):
    """Values that overflow float32 are rejected at the boundary (or, failing that, never written as Infinity)."""
    big = doc(5).astype(np.float64)
    big[0, 0] = 1e300
    with pytest.raises(ValueError):
        index.add([big], ["huge"])
    text = (index.path / storage.MANIFEST).read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"manifest holds {c}"))
    assert "huge" not in gingham.Index.open(index.path)
    assert math.isfinite(gingham.Index.open(index.path).codebook_drift())
