"""``gingham add``, ``delete``, ``get``, ``update`` and ``compact``: a built index's documents, changed in place.
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


def update(
    index_dir: IndexDir,
    ids: Ids = None,
    metadata: Optional[str] = typer.Option(None, help="A JSON object, each id's new metadata (see --mode), e.g. "
                                           "'{\"year\": 2024}'."),
    text: Optional[str] = typer.Option(None, help="Each id's new stored text (results and BM25 read it; MaxSim "
                                       "still scores the embedded one: to change that, delete and add)."),
    file: Optional[Path] = typer.Option(None, "--file", help="JSONL file of updates instead of ids: one "
                                        "{\"id\", \"metadata\", \"text\"} object per line (metadata or text, or "
                                        "both)."),
    mode: str = typer.Option("merge", help="merge: the given metadata keys replace the stored ones, the others stay; "
                             "replace: the given object replaces the stored one."),
) -> None:
    """Update documents' metadata and / or stored texts without re-embedding (one atomic commit); an id not in the
    index is an error and updates nothing."""
    from gingham import Index

    try:
        if bool(ids) == (file is not None):
            raise ValueError("give document ids (with --metadata and / or --text) or --file, not both or neither")
        if file is not None and (metadata is not None or text is not None):
            raise ValueError("--file holds each document's metadata and text; leave out --metadata and --text")
        if file is None and metadata is None and text is None:
            raise ValueError("nothing to update: give --metadata (a JSON object) and / or --text")
        if file is not None:
            doc_ids, metadatas, texts = read_updates(file)
        else:
            doc_ids = ids
            metadatas = [_json_object(metadata, "--metadata")] * len(ids) if metadata is not None else None
            texts = [text] * len(ids) if text is not None else None
        ix = Index.open(index_dir)
        generation = ix.update(keys(ix, doc_ids) if file is None else doc_ids, metadata=metadatas, texts=texts,
                               mode=mode)
    except USER_ERRORS as exc:
        fail(exc)
    typer.echo(f"{index_dir}: {len(doc_ids)} documents updated, generation {generation}")


def read_updates(path: Path) -> tuple[list, Optional[list], Optional[list]]:
    """A JSONL file of ``{"id", "metadata"?, "text"?}`` lines as ids, metadata and texts (None where no line has
    any; a line without one leaves that document's as it is)."""
    from gingham.build.corpus import jsonl_rows

    if not path.is_file():
        raise FileNotFoundError(f"updates file {path} does not exist")
    ids, metadata, texts = [], [], []
    for n, row in enumerate(jsonl_rows(path), start=1):
        unknown = sorted(set(row) - {"id", "metadata", "text"})
        if "id" not in row or unknown:
            raise ValueError(f"{path}: update {n} must hold \"id\" and \"metadata\" and / or \"text\", got keys "
                             f"{sorted(row)}")
        ids.append(row["id"])
        metadata.append(row.get("metadata"))
        texts.append(row.get("text"))
    if not ids:
        raise ValueError(f"{path} holds no updates; write one JSON object per line")
    return ids, (metadata if any(m is not None for m in metadata) else None), \
        (texts if any(t is not None for t in texts) else None)


def _json_object(text: str, what: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{what} is not JSON ({exc}); write an object such as {{\"year\": 2024}}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object such as {{\"year\": 2024}}, got {text.strip()[:80]!r}")
    return value


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
    for command in (add, delete, get, update, compact):
        app.command()(command)
