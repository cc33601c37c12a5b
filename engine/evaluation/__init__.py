"""Evaluation and benchmarking of Gingham: retrieval metrics on BEIR / XQuAD data, the cost of compression
against exact MaxSim, latency / throughput / memory, settings sweeps and tuning, and peers over the same
embeddings. Needs the ``bench`` extra (ir-measures, matplotlib, psutil); searching never imports this package.

>>> from gingham.evaluation import run_bench, run_eval, load_xquad, evaluate, tune
"""

from .bench import run_bench
from .data import XQUAD_LANGUAGES, Corpus, Task, load_beir, load_xquad
from .embeddings import EmbeddingCache, Encoded
from .evaluate import run_eval
from .metrics import DEFAULT_METRICS, evaluate, overlap_recall, ranked_lists
from .sweep import DEFAULT_GRID, grid_points, pareto, sweep, tune

__all__ = [
    "Corpus", "DEFAULT_GRID", "DEFAULT_METRICS", "EmbeddingCache", "Encoded", "Task", "XQUAD_LANGUAGES",
    "evaluate", "grid_points", "load_beir", "load_xquad", "overlap_recall", "pareto", "ranked_lists",
    "run_bench", "run_eval", "sweep", "tune",
]
