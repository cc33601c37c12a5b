"""What every peer driver shares: how inputs are read and how searches are timed and reported.

Drivers run as scripts in the peers' own environments (this folder is on their ``sys.path``), so this module
imports only numpy and the standard library. One protocol for every peer keeps the comparison fair: the same
warm-up, the same single-query loop, one batch call, positions padded with -1.
"""

import argparse
import json
import os
import resource
import sys
import time
from importlib import metadata

import numpy as np


def split(flat, lengths):
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return [np.ascontiguousarray(flat[offsets[i]:offsets[i + 1]], dtype=np.float32) for i in range(len(lengths))]


def parse_args():
    """``INPUT_DIR OUTPUT_JSON --config JSON`` -> (input dir, output path, config dict)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--config", default="{}")
    args = ap.parse_args()
    return args.input, args.output, json.loads(args.config)


def load_inputs(folder):
    """docs.npy + doc_lengths.npy, queries.npy + query_lengths.npy -> (docs, queries), lists of float32 arrays."""
    docs = split(np.load(os.path.join(folder, "docs.npy")), np.load(os.path.join(folder, "doc_lengths.npy")))
    queries = split(np.load(os.path.join(folder, "queries.npy")), np.load(os.path.join(folder, "query_lengths.npy")))
    return docs, queries


def version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def dir_bytes(folder):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(folder) for f in fs)


def timed_run(search, queries, settings, top_k, warm, n_single):
    """Time ``search(list_of_queries) -> list of result-position lists``: ``warm`` untimed queries, then the first
    ``n_single`` one at a time, then all of them in one call (whose positions are reported)."""
    for q in queries[:warm]:
        search([q])
    single = []
    for q in queries[:n_single]:
        t = time.perf_counter()
        search([q])
        single.append(time.perf_counter() - t)
    t = time.perf_counter()
    res = search(queries)
    batch_s = time.perf_counter() - t
    positions = [[int(p) for p in row][:top_k] + [-1] * max(0, top_k - len(row)) for row in res]
    return {"settings": settings, "single_s": single, "batch_s": batch_s, "positions": positions}


def peak_rss_mb():
    """This process's peak resident set size (MiB): ``VmHWM`` of /proc/self/status, the high-water mark of its own
    memory since it started. getrusage's ``ru_maxrss`` would also count its parent's RSS at the fork (Linux keeps
    the larger across exec), which charges a peer with the benchmark's own memory."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # no /proc: macOS counts bytes, others KiB
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def report(path, **fields):
    """Write the driver's JSON, with the process's peak RSS."""
    fields["peak_rss_mb"] = peak_rss_mb()
    if "index_bytes" in fields and "n_tokens" in fields:
        fields["bytes_per_token_on_disk"] = fields["index_bytes"] / max(1, fields["n_tokens"])
    with open(path, "w", encoding="utf-8") as f:
        json.dump(fields, f)
