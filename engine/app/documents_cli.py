"""``gingham add``, ``delete``, ``get`` and ``compact``: a built index's documents, changed in place.
Hook into the main CLI with ``register(app)``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from gingham.app.cli_util import USER_ERRORS, IndexDir, Params, Where, fail, setup_logging, sql_filter

#: Document ids on the command line (integers for an index with integer ids).
Ids = Annotated[Optional[list[str]], typer.Argument(help="Document ids.", show_default=False)]


def add(
    index_dir: Annotated[Path, typer.Argument(help="Index directory (built from texts).")],
    corpus: Annotated[Path, typer.Argument(help="JSONL / TSV / BEIR corpus of documents to add (metadata as for "
                                                "`gingham index`).")],
    upsert: bool = typer.Option(False, help="Replace documents whose id is already in the index."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Encode documents with the index's encoder and add them (one atomic commit)."""
    setup_logging(quiet)
    from gingham import Index
    from gingham.build.corpus import read_documents

    try:
        ix = Index.open(index_dir)
        ids, texts, metadata = read_documents(corpus, "corpus")
        generation = ix.add_texts(texts, ids, metadata=metadata, upsert=upsert, show_progress=not quiet)
    except USER_ERRORS as exc:
        fail(exc)
    typer.echo(f"{index_dir}: generation {generation}, {len(ix)} documents (codebook drift {ix.codebook_drift():.2f})")


def delete(
    index_dir: IndexDir,
    ids: Ids = None,
    missing_ok: bool = typer.Option(False, help="Ignore ids that are not in the index."),
    where: Where = None,
    param: Params = None,
) -> None:
    """Delete documents by id, or every document a --where filter matches (one atomic commit)."""
    from gingham import Index

    try:
        if bool(ids) == (where is not None):
            raise ValueError("give document ids or --where (a SQL filter over metadata fields), not both or neither")
        condition = sql_filter(where, param)
        ix = Index.open(index_dir)
        if condition:
            deleted = ix.delete_where(condition["where"], condition["params"])
            typer.echo(f"{index_dir}: {deleted} documents deleted, generation {ix.generation}, {len(ix)} documents")
            return
        generation = ix.delete(keys(ix, ids), missing_ok=missing_ok)
    except USER_ERRORS as exc:
        fail(exc)
    typer.echo(f"{index_dir}: generation {generation}, {len(ix)} documents")


def get(index_dir: IndexDir, ids: Ids) -> None:
    """Print documents by id as JSON lines ({"id", "text", "metadata"}); an id not in the index is an error."""
    from gingham import Index

    try:
        ix = Index.open(index_dir)
        found = ix.documents(keys(ix, ids))
    except USER_ERRORS as exc:
        fail(exc)
    for doc in found:
        typer.echo(json.dumps(doc, ensure_ascii=False))


def compact(index_dir: IndexDir) -> None:
    """Merge segments and drop deleted documents."""
    from gingham import Index

    try:
        ix = Index.open(index_dir)
        generation = ix.compact()
    except USER_ERRORS as exc:
        fail(exc)
    typer.echo(f"{index_dir}: generation {generation}, {len(ix)} documents in 1 segment")


def keys(ix, ids: list[str]) -> list:
    """Command-line ids as the index's ids (integers for an index with integer ids)."""
    return [_int_id(i) for i in ids] if ix.manifest["doc_id_kind"] == "int" else list(ids)


def _int_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"document id {text!r} is not an integer, and this index's ids are integers") from None


def register(app: typer.Typer) -> None:
    """Add the document commands to a Typer app (the ``gingham`` CLI), in the order ``gingham --help`` lists."""
    for command in (add, delete, get, compact):
        app.command()(command)
