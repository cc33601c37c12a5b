"""The server under concurrent text queries: micro-batched query encodes against one encode per request.

    python bench/bench_server_batching.py --model multilingual-e5-small --clients 1,4,16 --requests 96 \
        --out bench/out/server-batching
    python bench/bench_server_batching.py --model lfm2-colbert-350m --dtype int8 --clients 1,8 --requests 32

An index of XQuAD's 240 English paragraphs is built from their texts with ``--model`` (cached in OUT). For each
mode (``batched``: ``BatchingConfig(max_batch, max_wait_ms)``, the default; ``one-at-a-time``: ``batching=None``)
a server runs in its own process (``gingham.app.server.serve``) and, for each number of concurrent clients, the clients
(threads, one HTTP connection each) send ``--requests`` distinct one-query ``/search`` requests in all (XQuAD
questions in 12 languages, none repeated, so the cache never answers); reported: queries/s and the p50 / p95 of
the request latency. ``--repeat-share`` > 0 makes that share of requests repeat an earlier query (the cache's
case). Records ``lscpu`` and the load average. Never in the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import colbert_architectures  # noqa: E402
import machine_info  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "xquad-retrieval"


def build_index(out: Path, model: str, dtype: str) -> Path:
    from gingham import Index
    from gingham.build.corpus import read_texts

    path = out / f"index-{Path(model).name}-{dtype}"
    if path.exists():
        return path
    ids, texts = read_texts(DATA / "corpus.en.jsonl", "corpus")
    Index.from_texts(path, texts, ids, model=model, encoder_options={"dtype": dtype}, show_progress=False)
    return path


def queries(n: int, repeat_share: float, seed: int = 0) -> list[str]:
    from gingham.build.corpus import read_texts

    pool = []
    for f in sorted(DATA.glob("queries.*.jsonl")):
        pool += read_texts(f, "queries")[1]
    rng = np.random.default_rng(seed)
    rng.shuffle(pool)
    out = []
    for i in range(n):
        if out and rng.random() < repeat_share:
            out.append(out[int(rng.integers(len(out)))])
        else:
            out.append(pool[i % len(pool)])
    return out


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(index: Path, batching: dict | None, threads: int | None) -> tuple[subprocess.Popen, str]:
    port = _port()
    cfg = "None" if batching is None else f"BatchingConfig(**{batching!r})"
    code = ("import logging; logging.getLogger('transformers').setLevel(logging.ERROR)\n"
            + (f"import torch; torch.set_num_threads({threads})\n" if threads else "")
            + "from gingham.encoder.batcher import BatchingConfig\nfrom gingham.app.server import serve\n"
            + f"serve({str(index)!r}, port={port}, batching={cfg})\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, TOKENIZERS_PARALLELISM="false"))
    base = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        try:
            with urllib.request.urlopen(base + "/ready", timeout=2) as r:
                if r.status == 200:
                    return proc, base
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.25)
    raise RuntimeError("server did not become ready in 300 s")


def search(base: str, query: str) -> float:
    body = json.dumps({"queries": [query], "top_k": 10}).encode()
    req = urllib.request.Request(base + "/search", data=body, headers={"Content-Type": "application/json"},
                                 method="POST")
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as resp:
        resp.read()
    return time.perf_counter() - t


def batching_stats(base: str) -> dict:
    with urllib.request.urlopen(base + "/info", timeout=60) as resp:
        return json.loads(resp.read()).get("query_batching") or {}


def drive(base: str, texts: list[str], clients: int) -> dict:
    search(base, "warm up")  # first request: the encoder's and the batcher's first call
    before = batching_stats(base)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        lat = list(pool.map(lambda q: search(base, q), texts))
    wall = time.perf_counter() - t0
    after = batching_stats(base)
    a = np.asarray(lat) * 1e3
    out = {"clients": clients, "requests": len(texts), "queries_per_s": len(texts) / wall,
           "p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)), "wall_s": wall,
           "loadavg": machine_info.loadavg()}
    if after:
        batches = after["batches"] - before.get("batches", 0)
        out["encode_calls"] = batches
        out["texts_per_call"] = (after["batched_texts"] - before.get("batched_texts", 0)) / max(batches, 1)
        out["cache_hits"] = after["cache_hits"] - before.get("cache_hits", 0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="multilingual-e5-small")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--requests", type=int, default=96)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-wait-ms", type=float, default=2.0)
    ap.add_argument("--repeat-share", type=float, default=0.0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--modes", default="one-at-a-time,batched")
    ap.add_argument("--out", type=Path, default=Path("bench/out/server-batching"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = args.model
    if model in colbert_architectures.ARCHITECTURES:
        model = str(colbert_architectures.build(model))
    index = build_index(args.out, model, args.dtype)
    results = {"model": args.model, "dtype": args.dtype, "machine": machine_info.machine(),
               "args": {k: str(v) for k, v in vars(args).items()}, "runs": {}}
    batched = {"max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms}
    for mode in args.modes.split(","):
        proc, base = start_server(index, batched if mode == "batched" else None, args.threads)
        try:
            rows = []
            for i, c in enumerate(int(x) for x in args.clients.split(",")):
                texts = queries(args.requests, args.repeat_share, seed=i)
                rows.append(drive(base, texts, c))
                print(mode, rows[-1], flush=True)
            results["runs"][mode] = rows
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    results["loadavg_end"] = machine_info.loadavg()
    lines = [f"# Server under concurrent text queries ({args.model}, {args.dtype})", "",
             machine_info.header(results["machine"]), "",
             f"batched: max_batch {args.max_batch}, max_wait_ms {args.max_wait_ms}; {args.requests} distinct "
             f"one-query requests per row (repeat share {args.repeat_share})", "",
             "| clients | mode | queries/s | p50 | p95 | encode calls (texts per call) | load average |",
             "|---|---|---|---|---|---|---|"]
    for mode, rows in results["runs"].items():
        for r in rows:
            calls = f"{r['encode_calls']} ({r['texts_per_call']:.1f})" if "encode_calls" in r else str(r["requests"])
            lines.append(f"| {r['clients']} | {mode} | {r['queries_per_s']:.1f} | {r['p50_ms']:.0f} ms | "
                         f"{r['p95_ms']:.0f} ms | {calls} | {r['loadavg'][0]:.2f} |")
    md = "\n".join(lines) + "\n"
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    (args.out / "summary.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
