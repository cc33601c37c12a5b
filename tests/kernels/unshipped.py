"""bench/unshipped_kernels.py and its references (kernels the engine does not ship, which benches time), loaded
from the checkout for the tests that compare them with their references or use them as inputs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str):
    """The module ``bench/<name>.py`` under its own name, as bench scripts import it (one copy per process)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


kernels = _load("unshipped_kernels")
reference = _load("unshipped_reference")
