"""Shared helpers of the evaluation tests (a uniquely named module: importable beside other conftests)."""

import hashlib
import json
from pathlib import Path

import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


class WordEncoder:
    """A deterministic stand-in for the text encoder: one seeded unit vector per lower-cased word."""

    dim = 16

    def __init__(self):
        self.calls = 0

    def _vec(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
        return v / np.linalg.norm(v)

    def _encode(self, texts):
        self.calls += 1
        return [np.stack([self._vec(w) for w in (t.lower().split() or ["<empty>"])]) for t in texts]

    encode_queries = _encode
    encode_documents = _encode


def write_beir(folder: Path, header: bool = True, qrels_path: str = "qrels.tsv") -> Path:
    """A tiny BEIR folder: 8 documents about distinct topics, 4 queries (one without judgments), graded qrels."""
    folder.mkdir(parents=True, exist_ok=True)
    topics = ["apple banana cherry", "river mountain lake", "guitar piano violin", "football tennis golf",
              "python java rust", "paris london berlin", "winter summer autumn", "red green blue"]
    with open(folder / "corpus.jsonl", "w") as f:
        for i, t in enumerate(topics):
            f.write(json.dumps({"_id": f"d{i}", "title": "", "text": f"{t} words about {t.split()[0]}"}) + "\n")
    queries = {"q0": "banana cherry", "q1": "piano violin", "q2": "london berlin", "q3": "nothing judged"}
    with open(folder / "queries.jsonl", "w") as f:
        for qid, t in queries.items():
            f.write(json.dumps({"_id": qid, "text": t}) + "\n")
    rows = [("q0", "d0", 2), ("q0", "d7", 1), ("q1", "d2", 1), ("q2", "d5", 2), ("q2", "d1", 0)]
    path = folder / qrels_path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        if header:
            f.write("query-id\tcorpus-id\tscore\n")
        for q, d, g in rows:
            f.write(f"{q}\t{d}\t{g}\n")
    return folder


def peer_python_or_skip(name: str):
    """The Python of peer ``name``'s own venv, or skip the test saying why it is unavailable."""
    import pytest

    from gingham.evaluation import peers

    python = peers.default_python(name)
    why = peers.available(name, python)
    if why:
        pytest.skip(why)
    return python
