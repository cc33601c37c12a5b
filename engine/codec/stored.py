"""How a codebook is stored: the narrowest integer type for codes, rows as int8 times a float16 scale, vectors
rounded to float16. Each ``stored_*`` function gives the values a reader gets back, so that training rounds to
them and the build, every add and every reader use the same vectors. The codec's files are written and read by
``ResidualCodec.arrays`` and ``ResidualCodec.from_arrays`` (:mod:`gingham.codec.residual`).
"""

from __future__ import annotations

import numpy as np


def codes_dtype(n_centroids: int) -> np.dtype:
    """The narrowest integer type that holds every centroid id."""
    if n_centroids <= 2**8:
        return np.dtype(np.uint8)
    if n_centroids <= 2**16:
        return np.dtype(np.uint16)
    return np.dtype(np.int32)


#: On-disk type of the sub-centroid table (and of centroids this version cannot store as int8: those of indexes
#: built before centroids were): half the bytes of float32, and the rounding error (~5e-4 of a unit vector's
#: length) is far below the residual quantisation's (~0.1). Training rounds them, so the build, every add and
#: every reader use the same vectors.
SUB_CENTROID_DTYPE = np.float16


def stored_precision(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` as float32 rounded to :data:`SUB_CENTROID_DTYPE`, the values a reader gets back."""
    rounded = np.asarray(vectors, dtype=np.float32).astype(SUB_CENTROID_DTYPE)
    return np.ascontiguousarray(rounded, dtype=np.float32)


def compact(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` in :data:`SUB_CENTROID_DTYPE` when that is lossless (sub-centroids, coarse centroids and
    residual scales trained by this version, which rounds them), else as they are (older indexes' float32)."""
    half = vectors.astype(SUB_CENTROID_DTYPE)
    return half if np.array_equal(half.astype(np.float32), vectors) else vectors


def quantize_rows(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``vectors`` as int8 (-127..127) times a per-row float16 scale: ``(q int8 (n, dim), scales float16
    (n,))``, read back by :func:`dequantize_rows`.

    How centroids are stored: a token's residual is measured from the centroid as stored, so the centroid's own
    rounding (at most half a step, ~1/254 of its largest component) moves no token's reconstruction; only centroid
    scores in candidate generation see it, and they are approximate anyway. 1 byte per component: at 16,384
    centroids, dim 128, 1.75 bytes per token of a 1.2M-token corpus against 3.5 as float16.

    Each scale is rounded *down* to float16, so every row's largest component quantises to exactly +-127 (clipped):
    quantising a dequantised row gives back the same ints and scale (tested), so a codebook survives any number of
    store/load round trips bit for bit. A zero row gets scale 1. A row whose largest component is below ~0.008
    (its scale below float16's normal range; never a unit vector of dim < 250,000) loses precision and does not
    round-trip: :meth:`ResidualCodec.arrays` then stores the centroids as floats, losslessly.
    """
    v = np.asarray(vectors, dtype=np.float32)
    top = np.abs(v).max(axis=1) if v.size else np.zeros(len(v), np.float32)
    exact = np.where(top > 0, top / 127.0, 1.0).astype(np.float32)
    half = exact.astype(np.float16)
    over = half.astype(np.float32) > exact
    half[over] = np.nextafter(half[over], np.float16(0))
    half = np.maximum(half, np.float16(2**-24))  # never 0 (float16's smallest step)
    q = np.clip(np.rint(v / half.astype(np.float32)[:, None]), -127, 127).astype(np.int8)
    return q, half


def dequantize_rows(q: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """float32 rows from :func:`quantize_rows`' ints and scales (exact in float32: 7 x 11 significant bits)."""
    return np.ascontiguousarray(np.asarray(q, dtype=np.float32) * np.asarray(scales, dtype=np.float32)[:, None])


def stored_centroids(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` as float32 rounded the way centroids are stored (:func:`quantize_rows`): the values a reader
    gets back. Training rounds centroids with this, so the build, every add and every reader use the same ones."""
    return dequantize_rows(*quantize_rows(vectors))


def stored_codewords(codewords: np.ndarray) -> np.ndarray:
    """``codewords`` (n_bytes, 256, per_byte) as float32 rounded the way they are stored: int8 per byte position
    times a float16 scale (:func:`quantize_rows`: a step of 1/127 of the position's largest value). Training rounds
    them, so tokens are coded against what readers hold."""
    cw = np.asarray(codewords, dtype=np.float32)
    return dequantize_rows(*quantize_rows(cw.reshape(cw.shape[0], -1))).reshape(cw.shape)
