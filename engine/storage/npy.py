"""Reading ``.npy`` files safely from many threads, and telling damaged bytes from every other failure.

numpy parses a ``.npy`` header (a Python dict literal) with ``ast.literal_eval``. On CPython 3.11 the AST builder
keeps its recursion depth in interpreter-wide state, so parses running at once in several threads now and then
fail with ``SystemError: AST constructor recursion depth mismatch`` (python/cpython#106905): an index opened from
8 threads failed 15 times in 4,226 opens, and any other code in the process that parses Python (``ast.parse``,
``literal_eval``) can set it off. A lock would guard Gingham's own parses only. :func:`read_header` instead
parses, with a regular expression, the one form numpy writes for an array of numbers or strings (every array
Gingham stores or reads): ``{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`` padded with spaces and
a newline. Headers of structured dtypes, or written by Python 2, are refused.

Bytes that are not a valid array (magic, version, header, a size that disagrees with the header) raise
:class:`NpyFormatError`, a ValueError naming the file; any other failure (a file removed meanwhile, too many
open files, no memory) propagates as it is, so that callers never report it as damage.
"""

from __future__ import annotations

import math
import os
import re
import struct
from pathlib import Path

import numpy as np

MAGIC = b"\x93NUMPY"
#: Header length field and text encoding by format version (numpy's .npy versions 1.0, 2.0 and 3.0).
_VERSIONS = {1: ("<H", "latin1"), 2: ("<I", "latin1"), 3: ("<I", "utf8")}
#: Longest header read (numpy refuses headers over 10,000 characters unless told to trust the file).
MAX_HEADER = 65_536
_HEADER = re.compile(
    r"\{'descr': '(?P<descr>[<>|=][A-Za-z]\d*(?:\[\d*[A-Za-z]+\])?)', 'fortran_order': (?P<fortran>True|False), "
    r"'shape': \((?P<shape>|\d+,|\d+(?:, \d+)+)\), \}[ ]*\n?")


class NpyFormatError(ValueError):
    """A file whose bytes are not a valid ``.npy`` array."""

    def __init__(self, path, what: str) -> None:
        super().__init__(f"{path} is not a valid .npy file: {what}")
        self.path = path


def read_header(f, path) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, data offset) of the ``.npy`` file open as ``f`` (binary, at its start)."""
    head = f.read(len(MAGIC) + 2)
    if len(head) < len(MAGIC) + 2 or head[:len(MAGIC)] != MAGIC:
        raise NpyFormatError(path, f"it starts with {head[:8]!r}, not the .npy magic {MAGIC!r}")
    major, minor = head[-2], head[-1]
    if major not in _VERSIONS or minor != 0:
        raise NpyFormatError(path, f"format version {major}.{minor} is not one of 1.0, 2.0, 3.0")
    size_format, encoding = _VERSIONS[major]
    raw = f.read(struct.calcsize(size_format))
    if len(raw) != struct.calcsize(size_format):
        raise NpyFormatError(path, "it ends inside its header length")
    length = struct.unpack(size_format, raw)[0]
    if length > MAX_HEADER:
        raise NpyFormatError(path, f"its header length is {length} bytes (at most {MAX_HEADER})")
    data = f.read(length)
    if len(data) != length:
        raise NpyFormatError(path, f"it ends inside its {length}-byte header")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise NpyFormatError(path, f"its header is not {encoding} text ({exc})") from None
    offset = len(head) + len(raw) + length
    m = _HEADER.fullmatch(text)
    if m is None:
        raise NpyFormatError(path, f"its header {text[:200]!r} is not the one numpy writes for an array of numbers "
                                   "or strings")
    try:
        dtype = np.dtype(m["descr"])
    except (TypeError, ValueError) as exc:
        raise NpyFormatError(path, f"its dtype {m['descr']!r} is not one numpy knows ({exc})") from None
    shape = tuple(int(n) for n in m["shape"].replace(",", " ").split())
    fortran = m["fortran"] == "True"
    if dtype.hasobject:
        raise NpyFormatError(path, f"it holds Python objects (dtype {dtype}), which are never loaded")
    return shape, fortran, dtype, offset


def load(path: str | os.PathLike, mmap: bool = True) -> np.ndarray:
    """The array in the ``.npy`` file at ``path``: memory-mapped read-only (``mmap``, unless it is empty: numpy
    cannot map zero bytes) or read into memory. The file must hold exactly the bytes its header declares."""
    path = Path(path)
    with open(path, "rb") as f:
        shape, fortran, dtype, offset = read_header(f, path)
        count = math.prod(shape)  # Python ints: a damaged shape cannot overflow
        nbytes = count * dtype.itemsize
        size = os.fstat(f.fileno()).st_size
        if size != offset + nbytes:
            raise NpyFormatError(path, f"it has {size - offset} bytes of data but its header declares {dtype.str}"
                                       f"{list(shape)}, {nbytes} bytes")
        order = "F" if fortran else "C"
        if mmap and nbytes > 0:
            return np.memmap(f, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)
        arr = np.fromfile(f, dtype=dtype, count=count)
    return arr.reshape(shape, order=order)
