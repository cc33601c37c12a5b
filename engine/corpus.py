"""Reading corpora and queries: JSONL, BEIR folders (corpus.jsonl / queries.jsonl / qrels), TSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterator


def _jsonl_rows(path: Path) -> Iterator[dict]:
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


def _record(row: dict, path: Path, lineno: int) -> tuple[str, str]:
    rid = row.get("_id", row.get("id", row.get("docid")))
    text = row.get("text", row.get("contents"))
    if rid is None or text is None:
        raise ValueError(
            f"{path} row {lineno} needs an id field ('_id' or 'id') and a 'text' field; it has {sorted(row)}"
        )
    title = row.get("title") or ""
    if title:
        text = f"{title} {text}"
    return str(rid), str(text)


def read_texts(path: str | Path, kind: str = "corpus") -> tuple[list[str], list[str]]:
    """(ids, texts) from a JSONL file, a TSV file (id<TAB>text), or a BEIR folder (``corpus.jsonl`` /
    ``queries.jsonl``, per ``kind``). BEIR titles are prepended to the text."""
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
        for lineno, row in enumerate(_jsonl_rows(path), start=1):
            rid, text = _record(row, path, lineno)
            ids.append(rid)
            texts.append(text)
    if not ids:
        raise ValueError(f"{path} holds no {kind} rows")
    return ids, texts


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
