"""Evaluation data: BEIR folders (corpus.jsonl, queries.jsonl, qrels) and the XQuAD cross-lingual layouts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gingham.corpus import read_qrels, read_texts

XQUAD_LANGUAGES = ("en", "es", "de", "el", "ru", "tr", "ar", "vi", "th", "zh", "hi", "ro")
XQUAD_R_LANGUAGES = ("en", "es", "de", "el", "ru", "tr", "ar", "vi", "th", "zh", "hi")
XQUAD_MODES = ("x-en", "x-x", "xquad-r")


@dataclass(frozen=True)
class Corpus:
    """Documents to index; ``name`` keys the embedding cache and the indexes built from it."""

    name: str
    ids: list[str]
    texts: list[str]


@dataclass(frozen=True)
class Task:
    """One evaluation: queries against a corpus, judged by qrels (query-id -> {doc-id: grade})."""

    name: str
    corpus: Corpus
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, int]]
    language: str | None = None
    extra: dict = field(default_factory=dict)


def _judged(query_ids, query_texts, qrels, limit: int | None):
    """Queries with at least one relevant (grade > 0) document, in file order, the first ``limit`` of them."""
    keep = [(q, t) for q, t in zip(query_ids, query_texts) if any(g > 0 for g in qrels.get(q, {}).values())]
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit_queries must be >= 1, got {limit}")
        keep = keep[:limit]
    if not keep:
        raise ValueError("no query has a relevant document in the qrels; check the query ids of the qrels file")
    ids = [q for q, _ in keep]
    return ids, [t for _, t in keep], {q: qrels[q] for q in ids}


def load_beir(folder: str | Path, *, limit_queries: int | None = None, limit_docs: int | None = None,
              name: str | None = None, queries: str | None = None) -> Task:
    """A BEIR folder: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels.tsv`` or ``qrels/test.tsv``.

    ``queries``: another query file of the folder, e.g. ``"queries.de.jsonl"`` (the XQuAD layouts keep one per
    language next to one ``corpus.jsonl``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; pass a BEIR folder with corpus.jsonl, queries.jsonl, qrels")
    if queries is not None and not (folder / queries).is_file():
        present = sorted(p.name for p in folder.glob("queries*.jsonl"))
        raise FileNotFoundError(f"{folder / queries} does not exist; the folder has query files {present}")
    doc_ids, doc_texts = read_texts(folder, "corpus")
    if limit_docs is not None:
        doc_ids, doc_texts = doc_ids[:limit_docs], doc_texts[:limit_docs]
    qids, qtexts = read_texts(folder / queries if queries is not None else folder, "queries")
    qrels = read_qrels(folder)
    if limit_docs is not None:
        kept = set(doc_ids)
        qrels = {q: {d: g for d, g in rel.items() if d in kept} for q, rel in qrels.items()}
    qids, qtexts, qrels = _judged(qids, qtexts, qrels, limit_queries)
    base = name or folder.name
    corpus_name = base if limit_docs is None else f"{base}-first{limit_docs}"
    return Task(name=base if queries is None else f"{base}-{Path(queries).stem}", corpus=Corpus(corpus_name, doc_ids, doc_texts), query_ids=qids, query_texts=qtexts,
                qrels=qrels)


def _languages(languages, allowed) -> list[str]:
    languages = list(languages) if languages else list(allowed)
    bad = [x for x in languages if x not in allowed]
    if bad:
        raise ValueError(f"unknown language(s) {bad}; this data set has {list(allowed)}")
    return languages


def load_xquad(root: str | Path, mode: str = "x-en", languages=None, *,
               limit_queries: int | None = None) -> list[Task]:
    """Cross-lingual tasks, one per query language.

    ``x-en``: queries.<lang> against the English paragraphs of ``xquad-retrieval`` (one shared corpus).
    ``x-x``: queries.<lang> against corpus.<lang> of ``xquad-retrieval`` (one corpus per language).
    ``xquad-r``: queries.<lang> against the 13,014-sentence multilingual pool of ``xquad-r`` (LAReQA; 11
    relevant sentences per question; report AP).
    ``root`` is the data set folder itself (``.../xquad-retrieval`` or ``.../xquad-r``).
    """
    root = Path(root)
    if mode not in XQUAD_MODES:
        raise ValueError(f"mode must be one of {XQUAD_MODES}, got {mode!r}")
    if not (root / "qrels.tsv").exists():
        raise FileNotFoundError(f"{root} has no qrels.tsv; pass the xquad-retrieval or xquad-r folder")
    qrels = read_qrels(root / "qrels.tsv")
    langs = _languages(languages, XQUAD_R_LANGUAGES if mode == "xquad-r" else XQUAD_LANGUAGES)
    shared = None
    if mode in ("x-en", "xquad-r"):
        ids, texts = read_texts(root / "corpus.jsonl", "corpus")
        shared = Corpus(f"{root.name}-corpus", ids, texts)
    tasks = []
    for lang in langs:
        corpus = shared
        if corpus is None:
            ids, texts = read_texts(root / f"corpus.{lang}.jsonl", "corpus")
            corpus = Corpus(f"{root.name}-corpus.{lang}", ids, texts)
        qids, qtexts = read_texts(root / f"queries.{lang}.jsonl", "queries")
        qids, qtexts, rel = _judged(qids, qtexts, qrels, limit_queries)
        target = "en" if mode == "x-en" else (lang if mode == "x-x" else "all")
        tasks.append(Task(name=f"{lang}->{target}", corpus=corpus, query_ids=qids, query_texts=qtexts,
                          qrels=rel, language=lang, extra={"mode": mode}))
    return tasks
