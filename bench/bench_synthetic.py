"""Latency / throughput / recall of Gingham vs exact MaxSim (and fast-plaid when its venv exists) on the
seeded synthetic corpus.

    python bench/bench_synthetic.py --out bench/out/synthetic-5000 --n-docs 5000 --sweep --peers fast-plaid

A thin wrapper over ``gingham.evaluation.run_bench`` (same as ``gingham bench``).
"""

import argparse
import json
import logging
from pathlib import Path

from gingham.evaluation import run_bench


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench/out/synthetic"))
    ap.add_argument("--n-docs", type=int, default=5000)
    ap.add_argument("--n-queries", type=int, default=200)
    ap.add_argument("--nbits", default="2,4")
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--grid", default=None, help='JSON, e.g. {"n_ivf_probe": [1, 2, 4]}')
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument("--peers", default="", help="comma-separated, e.g. fast-plaid")
    ap.add_argument("--peers-python", type=Path, default=None)
    ap.add_argument("--peer-settings", default=None, help='JSON list, e.g. [{"n_ivf_probe": 8, "n_full_scores": 4096}]')
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("gingham").setLevel(logging.INFO)
    grid = {k: tuple(v) for k, v in json.loads(args.grid).items()} if args.grid else None
    run_bench(args.out, n_docs=args.n_docs, n_queries=args.n_queries, nbits=[int(x) for x in args.nbits.split(",")],
              do_sweep=args.sweep, grid=grid, target_recall=args.target_recall,
              peers=[p for p in args.peers.split(",") if p], peers_python=args.peers_python,
              peer_settings=json.loads(args.peer_settings) if args.peer_settings else None)
    print((args.out / "summary.md").read_text())


if __name__ == "__main__":
    main()
