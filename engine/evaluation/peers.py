"""Other engines over the same embeddings, each in its own virtual environment (Gingham never imports them).

The bench writes the embeddings as .npy files, runs a standalone driver script from
``gingham/evaluation/drivers/`` with the peer's Python through a subprocess, and reads back JSON timings and
result positions. Find the peer's Python with ``--peers-python``, ``$GINGHAM_PEERS_PYTHON``, or
``<repo>/.venv-peers/bin/python``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Sequence

import numpy as np

from .embeddings import flatten

log = logging.getLogger(__name__)

DRIVERS = {"fast-plaid": "fastplaid.py"}
PEERS = tuple(DRIVERS)


def default_python() -> Path | None:
    env = os.environ.get("GINGHAM_PEERS_PYTHON")
    if env:
        return Path(env)
    candidate = Path(__file__).resolve().parents[2] / ".venv-peers" / "bin" / "python"
    return candidate if candidate.exists() else None


def driver_path(name: str) -> Path:
    if name not in DRIVERS:
        raise ValueError(f"unknown peer {name!r}; known peers: {list(DRIVERS)}")
    return Path(__file__).resolve().parent / "drivers" / DRIVERS[name]


def available(name: str, python: Path | None) -> str | None:
    """None when the peer can run with ``python``, else why not."""
    if python is None or not Path(python).exists():
        return "no peers Python found (create .venv-peers or pass --peers-python / $GINGHAM_PEERS_PYTHON)"
    module = {"fast-plaid": "fast_plaid"}[name]
    probe = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"{module} is not importable by {python}: {probe.stderr.strip().splitlines()[-1:]}"
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
    cmd = [str(python), str(driver_path(name)), str(inputs), str(output), "--config", json.dumps(config)]
    log.info("running peer %s: %s", name, " ".join(cmd[:3]))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not output.exists():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"peer {name} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(output.read_text())
