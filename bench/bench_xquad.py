"""XQuAD cross-lingual evaluation: Gingham (nbits 2 and 4) vs exact MaxSim over multilingual-e5-small.

    python bench/bench_xquad.py --out bench/out/xquad-x-en [--mode x-en|x-x|xquad-r] [--limit-queries 200]

A thin wrapper over ``gingham.evaluation`` (same as ``gingham eval DATA --mode x-en --out ...``).
"""

import argparse
import logging
from pathlib import Path

from gingham.evaluation import load_xquad, run_eval

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench/out/xquad"))
    ap.add_argument("--mode", default="x-en", choices=("x-en", "x-x", "xquad-r"))
    ap.add_argument("--data", type=Path, default=None, help="xquad-retrieval (or xquad-r) folder")
    ap.add_argument("--languages", default=None, help="comma-separated, default all")
    ap.add_argument("--limit-queries", type=int, default=None)
    ap.add_argument("--nbits", default="2,4")
    ap.add_argument("--model", default="multilingual-e5-small")
    ap.add_argument("--top-k", type=int, default=100)
    ap.add_argument("--metrics", default="nDCG@10,RR@10,R@10,R@100,AP@100")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("gingham").setLevel(logging.INFO)
    data = args.data or DATA / ("xquad-r" if args.mode == "xquad-r" else "xquad-retrieval")
    langs = args.languages.split(",") if args.languages else None
    tasks = load_xquad(data, args.mode, langs, limit_queries=args.limit_queries)
    run_eval(tasks, args.out, model=args.model, nbits=[int(x) for x in args.nbits.split(",")],
             top_k=args.top_k, metrics=args.metrics.split(","), name=f"{data.name} ({args.mode})")
    print((args.out / "summary.md").read_text())


if __name__ == "__main__":
    main()
