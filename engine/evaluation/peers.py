"""Other engines over the same embeddings, each in its own virtual environment (Gingham never imports them).

The bench writes the embeddings as .npy files, runs a standalone driver script from
``gingham/evaluation/drivers/`` with the peer's Python through a subprocess, and reads back JSON timings and
result positions. Peers:

- ``fast-plaid``: fast-plaid's index. Python: ``--peers-python``, ``$GINGHAM_PEERS_PYTHON`` or
  ``<repo>/.venv-peers/bin/python``.
- ``pylate-voyager``: PyLate's Voyager (HNSW over every float32 token) + its ColBERT retriever, which reranks the
  candidates of each query token with exact MaxSim. No nbits; search settings ``k_token`` and ``ef_search``.
  Python: ``--peers-python``, ``$GINGHAM_PYLATE_PYTHON`` or ``<repo>/.venv-pylate/bin/python``.
- ``pylate-plaid``: PyLate's PLAID index (its fast-plaid backend). Python: ``--peers-python``,
  ``$GINGHAM_PYLATE_PLAID_PYTHON``, ``<repo>/.venv-pylate-plaid/bin/python``, else the ``pylate-voyager`` one.
- ``colbert-ai``: colbert-ai's own PLAID index (Stanford's reference implementation, the fastest CPU peer), driven
  below its text layers with the given embeddings (``CollectionIndexer``, ``IndexScorer.rank``); search settings
  ``ncells``, ``centroid_score_threshold``, ``ndocs``. Python: ``--peers-python``, ``$GINGHAM_COLBERT_PYTHON`` or
  ``<repo>/.venv-colbert/bin/python``.

``--peers-python`` (``peers_python``) is one Python for every peer, or a mapping peer → Python.

PyLate 1.6.0 pins fast-plaid <= 1.4.6.2110, whose compiled extension needs exactly torch 2.11.0 (it crashes under
another torch), while the CPU-only torch here is 2.13.0; hence two environments::

    python3.11 -m venv .venv-pylate            # CPU torch: pylate-voyager only
    .venv-pylate/bin/pip install torch==2.13.0 && .venv-pylate/bin/pip install --no-deps pylate==1.6.0
    .venv-pylate/bin/pip install -c <(echo torch==2.13.0) "sentence-transformers==5.3.0" "transformers<=5.3.0" \
        datasets accelerate pandas fastkmeans==0.5.0 ninja==1.11.1.4 ujson==5.12.0 voyager==2.1.0
    python3.11 -m venv .venv-pylate-plaid      # torch 2.11.0 (PyPI's CUDA build, run on CPU): both peers
    .venv-pylate-plaid/bin/pip install torch==2.11.0 pylate==1.6.0 voyager==2.1.0

fast-plaid alone (``--peers fast-plaid``) needs no PyLate: its 1.7 wheels link libtorch's CPU library only, so
PyPI's torch 2.11.0 (a CUDA build, 4.8 GB with its NVIDIA libraries) runs it on a machine without a GPU::

    python3.11 -m venv .venv-peers
    .venv-peers/bin/pip install fast-plaid==1.7.0.2110     # pulls torch==2.11.0, fastkmeans, usearch

voyager 2.2 rejects the list of vectors PyLate 1.6.0 passes to ``add_items``: keep voyager < 2.2.

colbert-ai 0.2.22 names no torch (its ``torch`` extra pins 1.13.1): install torch first and constrain it::

    python3.11 -m venv .venv-colbert
    .venv-colbert/bin/pip install torch==2.13.0         # PyPI's CPU build here: torch.version.cuda is None
    .venv-colbert/bin/pip install --no-deps colbert-ai==0.2.22
    .venv-colbert/bin/pip install -c <(echo torch==2.13.0) numpy faiss-cpu==1.15.1 "transformers==4.49.0" \
        ujson gitpython ninja bitarray scipy tqdm python-dotenv flask datasets

Its four C++ extensions (segmented_maxsim, filter_pids, decompress_residuals, segmented_lookup) compile with g++
and ninja on the driver's first run (about two minutes on two cores) into ``.venv-colbert/torch_extensions``; the
driver refuses to time a search that does not call them.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .embeddings import flatten

log = logging.getLogger(__name__)

DRIVERS = {"fast-plaid": "fastplaid.py", "pylate-voyager": "pylate_indexes.py", "pylate-plaid": "pylate_indexes.py",
           "colbert-ai": "colbert_ai.py"}
PEERS = tuple(DRIVERS)
# config every run of the peer's driver gets (the driver script serves several peers)
DRIVER_CONFIG = {"pylate-voyager": {"index": "voyager"}, "pylate-plaid": {"index": "plaid"}}
# peers whose index is built per nbits (the others store float vectors: built once, named without "-nbitsN")
USES_NBITS = {"fast-plaid": True, "pylate-voyager": False, "pylate-plaid": True, "colbert-ai": True}
# default search settings, most accurate first (the first is the peer's "default settings" row in the bench)
PLAID_SETTINGS = ({"n_ivf_probe": 8, "n_full_scores": 4096}, {"n_ivf_probe": 4, "n_full_scores": 1024},
                  {"n_ivf_probe": 2, "n_full_scores": 256}, {"n_ivf_probe": 1, "n_full_scores": 64})
VOYAGER_SETTINGS = ({"k_token": 100, "ef_search": 200}, {"k_token": 50, "ef_search": 100},
                    {"k_token": 20, "ef_search": 50}, {"k_token": 10, "ef_search": 20})  # first: PyLate's defaults
# colbert-ai: the PLAID paper's three rungs, which are also its Searcher's defaults for k <= 10 / <= 100 / more; the
# first (its default at the bench's usual k = 10) is the fastest, not the most accurate
COLBERT_SETTINGS = ({"ncells": 1, "centroid_score_threshold": 0.5, "ndocs": 256},
                    {"ncells": 2, "centroid_score_threshold": 0.45, "ndocs": 1024},
                    {"ncells": 4, "centroid_score_threshold": 0.4, "ndocs": 4096})
SETTINGS = {"fast-plaid": PLAID_SETTINGS, "pylate-voyager": VOYAGER_SETTINGS, "pylate-plaid": PLAID_SETTINGS,
            "colbert-ai": COLBERT_SETTINGS}
SETTING_KEYS = {"fast-plaid": {"n_ivf_probe", "n_full_scores", "batch_size", "n_processes", "show_progress"},
                "pylate-voyager": {"k_token", "ef_search", "batch_size"},
                "pylate-plaid": {"n_ivf_probe", "n_full_scores", "batch_size", "num_threads"},
                "colbert-ai": {"ncells", "centroid_score_threshold", "ndocs"}}
# (environment variables, venv folders under the repo root) looked up in turn for the peer's Python
_PYTHONS = {"fast-plaid": (("GINGHAM_PEERS_PYTHON",), (".venv-peers",)),
            "pylate-voyager": (("GINGHAM_PYLATE_PYTHON",), (".venv-pylate",)),
            "pylate-plaid": (("GINGHAM_PYLATE_PLAID_PYTHON", "GINGHAM_PYLATE_PYTHON"),
                             (".venv-pylate-plaid", ".venv-pylate")),
            "colbert-ai": (("GINGHAM_COLBERT_PYTHON",), (".venv-colbert",))}
_HINTS = {"fast-plaid": "create .venv-peers or pass --peers-python / $GINGHAM_PEERS_PYTHON",
          "pylate-voyager": "create .venv-pylate or pass --peers-python / $GINGHAM_PYLATE_PYTHON",
          "pylate-plaid": "create .venv-pylate-plaid or pass --peers-python / $GINGHAM_PYLATE_PLAID_PYTHON",
          "colbert-ai": "create .venv-colbert or pass --peers-python / $GINGHAM_COLBERT_PYTHON"}
# what the peer's Python must import (a script: exit status 0 when usable, else why on stderr)
_PROBES = {"fast-plaid": "import fast_plaid",
           "pylate-voyager": "import voyager\nfrom pylate import indexes, retrieve",
           "pylate-plaid": (
               "from importlib import metadata\nimport torch, fast_plaid\nfrom pylate import indexes, retrieve\n"
               "v = metadata.version('fast-plaid'); t = torch.__version__.split('+')[0]\n"
               "tag = v.split('.')[3] if v.count('.') >= 3 else None\n"
               "if tag and tag != ''.join(t.split('.')[:3]):\n"
               "    raise SystemExit(f'fast-plaid {v} is built for another torch than {torch.__version__} '\n"
               "                     f'(it crashes there): use a Python with torch matching fast-plaid')"),
           "colbert-ai": "import faiss, torch\nfrom colbert.indexing.collection_indexer import CollectionIndexer\n"
                         "from colbert.search.index_storage import IndexScorer"}


def _check(name: str) -> None:
    if name not in DRIVERS:
        raise ValueError(f"unknown peer {name!r}; known peers: {list(DRIVERS)}")


def default_python(name: str = "fast-plaid") -> Path | None:
    """Peer ``name``'s Python from its environment variables or its venv under the repo root (None if none)."""
    _check(name)
    envs, venvs = _PYTHONS[name]
    for env in envs:
        if os.environ.get(env):
            return Path(os.environ[env])
    root = Path(__file__).resolve().parents[2]
    for venv in venvs:
        candidate = root / venv / "bin" / "python"
        if candidate.exists():
            return candidate
    return None


def python_for(name: str, peers_python: str | Path | Mapping[str, str | Path] | None = None) -> Path | None:
    """The Python to run peer ``name`` with: ``peers_python`` (one for all, or a mapping peer → Python), else
    :func:`default_python`."""
    if isinstance(peers_python, Mapping):
        peers_python = peers_python.get(name)
    return Path(peers_python) if peers_python else default_python(name)


def driver_path(name: str) -> Path:
    _check(name)
    return Path(__file__).resolve().parent / "drivers" / DRIVERS[name]


def settings_for(name: str, peer_settings: Sequence[Mapping] | Mapping[str, Sequence[Mapping]] | None,
                 sweep: bool) -> list[dict]:
    """Search settings to run peer ``name`` with: ``peer_settings`` (a list for every peer that understands its
    keys, or a mapping peer → list), else the peer's defaults (all with ``sweep``, else the first)."""
    _check(name)
    if isinstance(peer_settings, Mapping):
        peer_settings = peer_settings.get(name)
    if peer_settings:
        unknown = {k for s in peer_settings for k in s} - SETTING_KEYS[name]
        if not unknown:
            return [dict(s) for s in peer_settings]
        log.warning("peer %s does not take settings %s: using its defaults", name, sorted(unknown))
    return [dict(s) for s in (SETTINGS[name] if sweep else SETTINGS[name][:1])]


def available(name: str, python: Path | None) -> str | None:
    """None when the peer can run with ``python``, else why not."""
    _check(name)
    if python is None or not Path(python).exists():
        return f"no Python for peer {name} found ({_HINTS[name]})"
    probe = subprocess.run([str(python), "-c", _PROBES[name]], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"{name} cannot run with {python}: {probe.stderr.strip().splitlines()[-1:]}"
    return None


def write_inputs(folder: Path, docs: Sequence[np.ndarray], queries: Sequence[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    flat, offsets = flatten(docs)
    np.save(folder / "docs.npy", flat)
    np.save(folder / "doc_lengths.npy", np.diff(offsets))
    qflat, qoffsets = flatten(queries)
    np.save(folder / "queries.npy", qflat)
    np.save(folder / "query_lengths.npy", np.diff(qoffsets))
    return folder


def run(name: str, python: Path, inputs: Path, config: dict, timeout: float | None = 3600) -> dict:
    """Run peer ``name``'s driver on ``inputs`` and return its JSON report (raises RuntimeError on failure)."""
    output = inputs / f"{name}-{config.get('nbits', 'x')}.json"
    config = {**config, **DRIVER_CONFIG.get(name, {})}
    cmd = [str(python), str(driver_path(name)), str(inputs), str(output), "--config", json.dumps(config)]
    log.info("running peer %s: %s", name, " ".join(cmd[:3]))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not output.exists():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"peer {name} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(output.read_text())
