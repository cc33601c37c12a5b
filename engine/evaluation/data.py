"""Evaluation data: BEIR folders (corpus.jsonl, queries.jsonl, qrels) and the XQuAD cross-lingual layouts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gingham.build.corpus import read_qrels, read_texts

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


#: the seed of ``limit_queries``'s sample: the same queries in every run, and across the languages of XQuAD
SAMPLE_SEED = 0


def _judged(query_ids, query_texts, qrels, limit: int | None):
    """Queries with at least one relevant (grade > 0) document, in file order; with ``limit``, a seeded sample
    of that many spread over the judged documents.

    The first N of a file are often about one document (XQuAD lists a paragraph's questions together, so its first
    N questions all point at one paragraph and every metric is 1.0). The sample groups the judged queries by
    their first relevant document, orders the documents by a seeded shuffle, and takes one query per document in
    turn (each document's queries also in a seeded order) until it has ``limit``: as many documents as it can,
    each represented about equally. The same ids give the same sample, so the languages of a parallel set keep
    the same questions."""
    keep = [(q, t) for q, t in zip(query_ids, query_texts) if any(g > 0 for g in qrels.get(q, {}).values())]
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit_queries must be a positive integer, got {limit!r}")
        keep = _spread_sample(keep, qrels, limit)
    if not keep:
        raise ValueError("no query has a relevant document in the qrels; check the query ids of the qrels file")
    ids = [q for q, _ in keep]
    return ids, [t for _, t in keep], {q: qrels[q] for q in ids}


def _spread_sample(judged: list, qrels, limit: int) -> list:
    """``limit`` of ``judged`` (query id, text) pairs, round-robin over their first relevant documents (seeded),
    returned in file order."""
    import numpy as np

    if limit >= len(judged):
        return judged
    by_doc: dict[str, list[int]] = {}
    for i, (q, _) in enumerate(judged):
        first = min(d for d, g in qrels[q].items() if g > 0)
        by_doc.setdefault(first, []).append(i)
    rng = np.random.default_rng(SAMPLE_SEED)
    docs = sorted(by_doc)
    order = [docs[i] for i in rng.permutation(len(docs))]
    queues = {d: [by_doc[d][i] for i in rng.permutation(len(by_doc[d]))] for d in order}
    picked: list[int] = []
    while len(picked) < limit:
        for d in order:
            if queues[d] and len(picked) < limit:
                picked.append(queues[d].pop(0))
    return [judged[i] for i in sorted(picked)]


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


def _languages(languages, allowed, present) -> list[str]:
    """The languages asked for, or, by default, those of ``allowed`` whose query file the data holds."""
    if not languages:
        languages = [x for x in allowed if x in present]
        if not languages:
            raise ValueError(f"no query files of the languages {list(allowed)} in the data (queries.<lang>.jsonl)")
        return languages
    languages = list(languages)
    bad = [x for x in languages if x not in allowed]
    if bad:
        raise ValueError(f"unknown language(s) {bad}; this data set has {[x for x in allowed if x in present]}")
    missing = [x for x in languages if x not in present]
    if missing:
        raise FileNotFoundError(f"no query file for language(s) {missing}; the data has "
                                f"{[x for x in allowed if x in present]}")
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
    present = {p.name[len("queries."):-len(".jsonl")] for p in root.glob("queries.*.jsonl")}
    if mode == "x-x":
        present &= {p.name[len("corpus."):-len(".jsonl")] for p in root.glob("corpus.*.jsonl")}
    langs = _languages(languages, XQUAD_R_LANGUAGES if mode == "xquad-r" else XQUAD_LANGUAGES, present)
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
