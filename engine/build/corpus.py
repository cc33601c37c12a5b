"""Reading corpora and queries: JSONL, BEIR folders (corpus.jsonl / queries.jsonl / qrels), TSV.

A JSONL row's metadata (:func:`read_documents`) is every field but its id and its text: the fields of a
``metadata`` object, and the other top-level fields (``title`` included, which is also prepended to the text).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterator


def jsonl_rows(path: Path) -> Iterator[dict]:
    """The JSON objects of a JSONL file, blank lines skipped; a line that is not an object is a ValueError."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno} is not valid JSON ({exc}); fix or remove the line") from exc
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno} must be a JSON object with an id and a text")
            yield row


#: Fields a JSONL row's id and text are read from, the first present of each.
ID_FIELDS = ("_id", "id", "docid")
TEXT_FIELDS = ("text", "contents")


def _first(row: dict, fields: tuple[str, ...]) -> str | None:
    return next((f for f in fields if f in row), None)


def row_record(row: dict, path: Path, lineno: int) -> tuple[str, str]:
    """A JSONL row's (id, text): the first of :data:`ID_FIELDS` and of :data:`TEXT_FIELDS`, the title before the text."""
    id_field, text_field = _first(row, ID_FIELDS), _first(row, TEXT_FIELDS)
    if id_field is None or text_field is None or row[id_field] is None or row[text_field] is None:
        raise ValueError(
            f"{path} row {lineno} needs an id field ('_id' or 'id') and a 'text' field; it has {sorted(row)}"
        )
    text = row[text_field]
    title = row.get("title") or ""
    if title:
        text = f"{title} {text}"
    return str(row[id_field]), str(text)


def row_metadata(row: dict, path: Path, lineno: int) -> dict:
    """A JSONL row's metadata: its fields but the id and the text, with the fields of its ``metadata`` object in
    place of that object (a name in both is an error)."""
    nested = row.get("metadata")
    if nested is not None and not isinstance(nested, dict):
        raise ValueError(f"{path} row {lineno}: 'metadata' must be a JSON object of fields, got "
                         f"{type(nested).__name__}; put the value in a field of its own")
    skip = {_first(row, ID_FIELDS), _first(row, TEXT_FIELDS), "metadata"}
    out = {k: v for k, v in row.items() if k not in skip}
    clash = sorted(set(out) & set(nested or {}))
    if clash:
        raise ValueError(f"{path} row {lineno} has {clash} both as a field and inside 'metadata'; keep one")
    out.update(nested or {})
    return out


def read_documents(path: str | Path, kind: str = "corpus") -> tuple[list[str], list[str], list[dict] | None]:
    """(ids, texts, metadata) from a JSONL file, a TSV file (id<TAB>text), or a BEIR folder (``corpus.jsonl`` /
    ``queries.jsonl``, per ``kind``). BEIR titles are prepended to the text. ``metadata``: per row its fields but
    the id and the text (the module's docstring), or None when no row has any (and for TSV)."""
    return _read(path, kind, with_metadata=True)


def read_texts(path: str | Path, kind: str = "corpus") -> tuple[list[str], list[str]]:
    """(ids, texts) as :func:`read_documents` reads them, without metadata (queries, for example)."""
    ids, texts, _ = _read(path, kind, with_metadata=False)
    return ids, texts


def _read(path: str | Path, kind: str, with_metadata: bool) -> tuple[list[str], list[str], list[dict] | None]:
    path = Path(path)
    if path.is_dir():
        candidate = path / f"{kind}.jsonl"
        if not candidate.exists():
            raise FileNotFoundError(f"{path} is a folder but has no {kind}.jsonl; pass the file itself")
        path = candidate
    if not path.exists():
        raise FileNotFoundError(f"{kind} file {path} does not exist")
    ids: list[str] = []
    texts: list[str] = []
    metadata: list[dict] = []
    if path.suffix in (".tsv", ".txt"):
        with open(path, encoding="utf-8", newline="") as f:
            for lineno, row in enumerate(csv.reader(f, delimiter="\t"), start=1):
                if not row:
                    continue
                if len(row) < 2:
                    raise ValueError(f"{path}:{lineno} must be 'id<TAB>text'")
                ids.append(row[0])
                texts.append(row[1])
    else:
        for lineno, row in enumerate(jsonl_rows(path), start=1):
            rid, text = row_record(row, path, lineno)
            ids.append(rid)
            texts.append(text)
            if with_metadata:
                metadata.append(row_metadata(row, path, lineno))
    if not ids:
        raise ValueError(f"{path} holds no {kind} rows")
    return ids, texts, (metadata if any(metadata) else None)


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """BEIR qrels (query-id, corpus-id, score), tab-separated, with or without a header line."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "qrels.tsv", path / "qrels" / "test.tsv"):
            if candidate.exists():
                path = candidate
                break
        else:
            raise FileNotFoundError(f"{path} has neither qrels.tsv nor qrels/test.tsv")
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        for lineno, row in enumerate(csv.reader(f, delimiter="\t"), start=1):
            if not row:
                continue
            if len(row) == 4:  # TREC style: qid 0 docid score
                row = [row[0], row[2], row[3]]
            if len(row) != 3:
                raise ValueError(f"{path}:{lineno} must have 3 tab-separated fields (query-id, corpus-id, score)")
            try:
                score = int(float(row[2]))
            except ValueError:
                if lineno == 1:
                    continue  # header line
                raise ValueError(f"{path}:{lineno}: score {row[2]!r} is not a number") from None
            qrels.setdefault(row[0], {})[row[1]] = score
    return qrels
