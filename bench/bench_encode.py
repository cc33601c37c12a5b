"""Encoding speed: Gingham's encoder vs a bare transformers forward of the same model and batches vs PyLate.

    python bench/bench_encode.py --model PATH/TO/LFM2-ColBERT-350M --out bench/out/encode \
        [--pylate-python /work/pylate-venv/bin/python] [--dtypes float32,bfloat16] [--device cpu] \
        [--threads 8] [--batch-size 32] [--n-queries 256] [--n-documents 256]

Texts: the English questions and paragraphs of XQuAD (``shared/data/xquad-retrieval``) when present, else
generated sentences. For each dtype, each side (queries, documents) is timed three ways on the same texts:

- ``gingham``: ``Encoder.encode_queries`` / ``encode_documents`` (tokenisation, batching, forward, projection,
  normalisation, skiplist, conversion to numpy: everything a caller pays);
- ``bare forward``: the backbone's own transformers forward (``model(input_ids, attention_mask)``) over the
  batches Gingham builds, tokenised beforehand: the floor Gingham's overhead is measured against (goal <= 5%);
  for a bidirectional LFM2.5 checkpoint this is transformers' causal ``Lfm2Model`` forward, the same work;
- ``pylate``: ``pylate.models.ColBERT(model).encode(texts, is_query=...)`` in PyLate's environment, through
  ``bench/pylate_encode_driver.py`` in a subprocess (skipped without ``--pylate-python``).

Reports texts/s and tokens/s (tokens = the token positions run through the model, expansion included).
Writes ``OUT/encode.json`` and ``OUT/encode.md``. Run it on a quiet machine; never in the tests.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "xquad-retrieval"
DRIVER = Path(__file__).resolve().parent / "pylate_encode_driver.py"


def load_texts(n_queries: int, n_documents: int) -> tuple[list[str], list[str]]:
    if (DATA / "queries.en.jsonl").exists() and (DATA / "corpus.en.jsonl").exists():
        from gingham.build.corpus import read_texts

        _, q = read_texts(DATA / "queries.en.jsonl", "queries")
        _, d = read_texts(DATA / "corpus.en.jsonl", "corpus")
    else:
        rng = np.random.default_rng(0)
        words = ("late interaction keeps one vector per token and scores every query token against the "
                 "document with maxsim which is why compression matters for search engines").split()
        q = [" ".join(rng.choice(words, int(rng.integers(4, 14)))) for _ in range(n_queries)]
        d = [" ".join(rng.choice(words, int(rng.integers(40, 300)))) for _ in range(n_documents)]
    reps_q, reps_d = -(-n_queries // len(q)), -(-n_documents // len(d))
    return (q * reps_q)[:n_queries], (d * reps_d)[:n_documents]


def _best(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bare_batches(enc, texts: list[str], is_query: bool, batch_size: int):
    """The (input_ids, attention_mask) batches Gingham's encoder feeds its model, built beforehand."""
    torch = __import__("torch")
    c = enc.config
    ids = enc.tokenize(texts, is_query=is_query)
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    expand = is_query and c.do_query_expansion
    batches, n_tokens = [], 0
    for start in range(0, len(order), batch_size):
        chunk = [ids[i] for i in order[start:start + batch_size]]
        width = c.query_length if expand else max(len(s) for s in chunk)
        input_ids = np.full((len(chunk), width), enc._pad_id, dtype=np.int64)
        mask = np.zeros((len(chunk), width), dtype=np.int64)
        for row, seq in enumerate(chunk):
            input_ids[row, :len(seq)] = seq
            mask[row, :len(seq)] = 1
        if expand and c.attend_to_expansion_tokens:
            mask[:] = 1
        n_tokens += int(mask.sum()) if not expand else input_ids.size
        batches.append((torch.from_numpy(input_ids).to(c.device), torch.from_numpy(mask).to(c.device)))
    return batches, n_tokens


def measure_gingham(model: str, dtype: str, device: str, threads: int, batch_size: int, queries, documents,
                    repeat: int) -> dict:
    import torch

    from gingham.encoder import load_encoder
    from gingham.encoder.encoder import torch_threads

    enc = load_encoder(model, dtype=dtype, device=device, threads=threads, batch_size=batch_size)
    out = {}
    for side, texts in (("queries", queries), ("documents", documents)):
        is_query = side == "queries"
        encode = enc.encode_queries if is_query else enc.encode_documents
        g = _best(lambda: encode(texts, show_progress=False), repeat)
        batches, n_tokens = bare_batches(enc, texts, is_query, batch_size)
        model_ = enc.backbone.model

        def bare():
            with torch_threads(threads), torch.inference_mode():
                for input_ids, mask in batches:
                    model_(input_ids=input_ids, attention_mask=mask).last_hidden_state
                if device.startswith("cuda"):
                    torch.cuda.synchronize()

        b = _best(bare, repeat)
        out[side] = {
            "n_texts": len(texts), "n_tokens": n_tokens,
            "gingham": {"seconds": g, "texts_per_s": len(texts) / g, "tokens_per_s": n_tokens / g},
            "bare forward": {"seconds": b, "texts_per_s": len(texts) / b, "tokens_per_s": n_tokens / b},
            "gingham overhead vs bare": g / b - 1.0,
        }
    return out


def measure_pylate(python: str, model: str, dtype: str, device: str, threads: int, batch_size: int, queries,
                   documents, repeat: int, workdir: Path) -> dict:
    inputs = workdir / "pylate_inputs.json"
    inputs.write_text(json.dumps({"model": model, "dtype": dtype, "device": device, "threads": threads,
                                  "batch_size": batch_size, "queries": queries, "documents": documents,
                                  "repeat": repeat}))
    proc = subprocess.run([python, str(DRIVER), str(inputs)], capture_output=True, text=True, timeout=7200)
    if proc.returncode != 0:
        raise RuntimeError(f"PyLate driver failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def markdown(results: dict) -> str:
    lines = ["| dtype | side | engine | texts/s | tokens/s | vs bare forward |", "|---|---|---|---|---|---|"]
    for dtype, r in results["runs"].items():
        for side in ("queries", "documents"):
            s = r["gingham"][side]
            bare = s["bare forward"]["seconds"]
            engines = [("gingham", s["gingham"]), ("bare forward", s["bare forward"])]
            if r.get("pylate"):
                p = r["pylate"][side]
                p = dict(p, tokens_per_s=s["n_tokens"] / p["seconds"])  # same tokens: PyLate's batches match ours
                engines.append(("pylate", p))
            for name, e in engines:
                lines.append(f"| {dtype} | {side} | {name} | {e['texts_per_s']:.1f} | {e['tokens_per_s']:.0f} | "
                             f"{e['seconds'] / bare - 1:+.1%} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model folder (PyLate layout)")
    ap.add_argument("--out", type=Path, default=Path("bench/out/encode"))
    ap.add_argument("--pylate-python", default=None, help="Python of an environment with PyLate")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--n-queries", type=int, default=256)
    ap.add_argument("--n-documents", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3, help="timed repetitions (best kept), after one warm-up")
    args = ap.parse_args()
    import torch

    threads = args.threads or torch.get_num_threads()
    args.out.mkdir(parents=True, exist_ok=True)
    queries, documents = load_texts(args.n_queries, args.n_documents)
    results = {"model": args.model, "device": args.device, "threads": threads, "batch_size": args.batch_size,
               "python": sys.version.split()[0], "torch": torch.__version__, "runs": {}}
    for dtype in args.dtypes.split(","):
        run = {"gingham": measure_gingham(args.model, dtype, args.device, threads, args.batch_size, queries,
                                          documents, args.repeat)}
        if args.pylate_python:
            run["pylate"] = measure_pylate(args.pylate_python, args.model, dtype, args.device, threads,
                                           args.batch_size, queries, documents, args.repeat, args.out)
        results["runs"][dtype] = run
    (args.out / "encode.json").write_text(json.dumps(results, indent=1))
    md = markdown(results)
    (args.out / "encode.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
