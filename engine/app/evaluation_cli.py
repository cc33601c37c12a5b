"""``gingham eval`` and ``gingham bench``. Hook into the main CLI with ``register(app)``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from gingham.app.cli_util import USER_ERRORS, fail, setup_logging

MODES = ("beir", "x-en", "x-x", "xquad-r")


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers such as '2,4', got {text!r}") from None


def _nbits(text: str) -> list[int]:
    """--nbits: comma-separated values, each one the build accepts (checked before any data is read)."""
    from gingham.common.config import NBITS_ALLOWED

    values = _ints(text, "--nbits")
    if not values or any(nb not in NBITS_ALLOWED for nb in values):
        raise ValueError(f"--nbits must be one or more of {', '.join(map(str, NBITS_ALLOWED))}, comma-separated "
                         f"(such as 2,4), got {text!r}")
    return values


def _grid(text: Optional[str]) -> Optional[dict]:
    if not text:
        return None
    try:
        grid = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"--grid must be JSON such as '{{\"n_ivf_probe\": [1, 4]}}' ({exc})") from None
    if not isinstance(grid, dict):
        raise ValueError("--grid must be a JSON object of setting -> list of values")
    return {k: tuple(v if isinstance(v, list) else [v]) for k, v in grid.items()}


def _settings_list(text: Optional[str]) -> Optional[list]:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"--peer-settings must be JSON such as '[{{\"n_ivf_probe\": 8}}]' ({exc})") from None
    if not isinstance(value, list) or not value or not all(isinstance(x, dict) for x in value):
        raise ValueError('--peer-settings must be a non-empty JSON list of objects, e.g. [{"n_ivf_probe": 8}]')
    return value


def eval_command(
    data: Path = typer.Argument(..., help="A BEIR folder, or the xquad-retrieval / xquad-r folder with --mode."),
    out: Path = typer.Option(..., "--out", help="Output folder (results.json, summary.md, heatmap.png, cache)."),
    mode: str = typer.Option("beir", help=f"One of {', '.join(MODES)}: a BEIR folder, or XQuAD cross-lingual "
                             "(X->en, X->X, XQuAD-R multilingual pool)."),
    model: str = typer.Option("multilingual-e5-small", help="Encoder (as for `gingham index`)."),
    nbits: str = typer.Option("2,4", help="Comma-separated nbits to build and compare."),
    languages: Optional[str] = typer.Option(None, help="Comma-separated query languages (XQuAD modes)."),
    limit_queries: Optional[int] = typer.Option(None, help="Use the first N judged queries (per language)."),
    limit_docs: Optional[int] = typer.Option(None, help="Use the first N documents (BEIR mode)."),
    top_k: int = typer.Option(100, help="Results per query (metric depth)."),
    metrics: str = typer.Option("nDCG@10,RR@10,R@10,R@100,AP@100", help="ir-measures metric names."),
    batch_size: Optional[int] = typer.Option(None, help="Texts per encoder batch."),
    allow_hub: bool = typer.Option(False, help="Allow downloading the model from the Hugging Face hub."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Retrieval quality of Gingham vs exact MaxSim (NDCG@10, MRR@10, recall, MAP) on BEIR or XQuAD data."""
    setup_logging(quiet)
    from gingham.evaluation.data import load_beir, load_xquad
    from gingham.evaluation.evaluate import run_eval

    try:
        if mode not in MODES:
            raise ValueError(f"--mode must be one of {MODES}, got {mode!r}")
        nbits_list = _nbits(nbits)
        langs = [x.strip() for x in languages.split(",")] if languages else None
        if mode == "beir":
            tasks = [load_beir(data, limit_queries=limit_queries, limit_docs=limit_docs)]
        else:
            tasks = load_xquad(data, mode, langs, limit_queries=limit_queries)
        opts = {"allow_hub": allow_hub}
        if batch_size:
            opts["batch_size"] = batch_size
        names = [m.strip() for m in metrics.split(",") if m.strip()]
        res = run_eval(tasks, out, model=model, nbits=nbits_list, top_k=top_k, metrics=names,
                       name=f"{Path(data).name} ({mode})", encoder_options=opts)
    except USER_ERRORS as exc:
        fail(exc)
    typer.echo((out / "summary.md").read_text(encoding="utf-8"))
    typer.echo(f"wrote {out}/results.json, summary.md, heatmap.png ({len(res['tasks'])} tasks)")


def bench_command(
    out: Path = typer.Option(..., "--out", help="Output folder (results.json, summary.md, PNG plots)."),
    n_docs: int = typer.Option(5000, help="Synthetic corpus size (ignored with --beir)."),
    corpus: str = typer.Option("easy", help="Synthetic data: 'easy' (well separated topics) or 'hard' (close "
                               "neighbours, small rank-10/11 score gaps; see gingham.evaluation.synthetic.make_hard_corpus)."),
    n_queries: int = typer.Option(200, help="Synthetic queries."),
    beir: Optional[Path] = typer.Option(None, help="Benchmark a BEIR folder encoded with --model instead."),
    model: str = typer.Option("multilingual-e5-small", help="Encoder for --beir."),
    limit_queries: Optional[int] = typer.Option(None, help="First N judged queries (--beir)."),
    limit_docs: Optional[int] = typer.Option(None, help="First N documents (--beir)."),
    queries: Optional[str] = typer.Option(None, help="Query file of the --beir folder to use instead of "
                                          "queries.jsonl, e.g. queries.de.jsonl (XQuAD layouts)."),
    nbits: str = typer.Option("2,4", help="Comma-separated nbits."),
    top_k: int = typer.Option(10, help="Results per query."),
    sweep: bool = typer.Option(False, "--sweep", help="Sweep search settings: latency–recall frontier + tuning."),
    grid: Optional[str] = typer.Option(None, help="Sweep grid as JSON, e.g. '{\"n_ivf_probe\": [1, 2, 4]}'."),
    target_recall: float = typer.Option(0.95, help="Recall@top_k vs exact that --sweep tunes for."),
    peers: Optional[str] = typer.Option(None, help="Comma-separated peers to run too: fast-plaid, pylate-voyager, pylate-plaid, colbert-ai (each in its own venv; "
                                          "see gingham.evaluation.peers)."),
    peers_python: Optional[Path] = typer.Option(None, help="Python of the peers' own virtual environment."),
    peer_settings: Optional[str] = typer.Option(
        None, help="Peers' search settings as a JSON list, e.g. '[{\"n_ivf_probe\": 8, \"n_full_scores\": 4096}]' "
                   "(default: four from that down with --sweep, else the first)."),
    seed: int = typer.Option(0, help="Seed of the synthetic data and builds."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Latency (p50/p95/p99), throughput, build time, memory and recall vs exact MaxSim, with optional peers."""
    setup_logging(quiet)
    from gingham.evaluation.bench import run_bench

    try:
        peer_list = [p.strip() for p in peers.split(",") if p.strip()] if peers else []
        res = run_bench(out, n_docs=n_docs, n_queries=n_queries, beir=beir, model=model, nbits=_nbits(nbits),
                        top_k=top_k, do_sweep=sweep, grid=_grid(grid), target_recall=target_recall,
                        peers=peer_list, peers_python=peers_python, limit_queries=limit_queries,
                        limit_docs=limit_docs, seed=seed, peer_settings=_settings_list(peer_settings),
                        queries=queries, corpus=corpus)
    except USER_ERRORS as exc:
        fail(exc)
    typer.echo((out / "summary.md").read_text(encoding="utf-8"))
    for name, t in res.get("tuning", {}).items():
        typer.echo(f"{name}: tuned search_defaults {json.dumps(t['settings'])} (recall {t['recall']:.4f}, "
                   f"target {'met' if t['met'] else 'not met'})")


def register(app: typer.Typer) -> None:
    """Add ``eval`` and ``bench`` to a Typer app (the ``gingham`` CLI)."""
    app.command("eval")(eval_command)
    app.command("bench")(bench_command)
