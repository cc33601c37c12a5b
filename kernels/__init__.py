"""Numba kernels of Gingham: pure functions over numpy arrays.

Nothing here takes or returns an object, a config or a global; the engine (``gingham``) owns objects, files and
policy. Every kernel has a plain numpy reference in :mod:`gingham.kernels.reference` and a test against it.
"""

if __name__ != "gingham.kernels":  # pragma: no cover - exercised in a subprocess by tests/test_packaging.py
    # This folder is ``gingham.kernels`` and nothing else. Python reaches it as a top-level ``kernels`` when the
    # checkout's root is on sys.path (``python -m pytest``, ``python -c`` or a notebook started there), where it
    # would shadow Hugging Face's ``kernels`` package, which transformers 5 imports. Step aside: put the ``kernels``
    # found on the rest of sys.path in this module's place, or fail exactly as if this folder were not there.
    import importlib.machinery as _machinery
    import importlib.util as _util
    import os as _os
    import sys as _sys

    _here = _os.path.dirname(_os.path.dirname(_os.path.realpath(__file__)))
    _path = [p for p in _sys.path if _os.path.realpath(p or _os.getcwd()) != _here]
    _spec = _machinery.PathFinder.find_spec(__name__, _path)
    if _spec is None or _spec.loader is None:
        raise ModuleNotFoundError(f"No module named {__name__!r}", name=__name__)
    _module = _util.module_from_spec(_spec)
    _sys.modules[__name__] = _module  # the import statement returns what sys.modules holds after this file ran
    try:
        _spec.loader.exec_module(_module)
    except BaseException:
        _sys.modules.pop(__name__, None)
        raise
else:
    from gingham.kernels.codec import compress_residuals, decompress, refine_codes, sum_rows
    from gingham.kernels.ivf import build_ivf
    from gingham.kernels.packed import (
        maxsim_packed,
        maxsim_packed_int8,
        packed_query_table,
        quantize_table,
    )
    from gingham.kernels.scoring import (
        centroid_interaction,
        dot_rows,
        ivf_candidates,
        maxsim_decompress,
        rank_centroids,
        segment_maxsim_parallel,
        topk,
        topk_rows,
    )
    from gingham.kernels.warmup import warmup

    __all__ = [
        "build_ivf",
        "centroid_interaction",
        "compress_residuals",
        "decompress",
        "dot_rows",
        "ivf_candidates",
        "maxsim_decompress",
        "maxsim_packed",
        "maxsim_packed_int8",
        "packed_query_table",
        "quantize_table",
        "rank_centroids",
        "refine_codes",
        "sum_rows",
        "segment_maxsim_parallel",
        "topk",
        "topk_rows",
        "warmup",
    ]
