"""Swap PyLate's index for Gingham's: the same ``add_documents`` / ``retrieve`` calls, a compressed index underneath.

    python examples/pylate_example.py                      # Gingham's offline e5 encoder stands in for PyLate's
    python examples/pylate_example.py --pylate-model lightonai/GTE-ModernColBERT-v1   # a PyLate model (needs pylate)

With PyLate installed the queries go through ``pylate.retrieve.ColBERT``; without it, through the index's own
``__call__``, which is exactly what that retriever calls. Either way the embeddings are what PyLate's
``model.encode`` returns: one (n_tokens, dim) array per text.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
from pathlib import Path

from gingham.integrations.pylate import PLAID

SAMPLE = Path(__file__).with_name("sample.jsonl")
QUERIES = ["¿En qué año llegó el hombre a la Luna?", "Wer hat das Penicillin entdeckt?"]


def encoder(args):
    """``encode(texts, is_query)``: PyLate's ColBERT model when asked for, else Gingham's encoder."""
    if args.pylate_model:
        from pylate import models

        model = models.ColBERT(model_name_or_path=args.pylate_model)
        return lambda texts, is_query: model.encode(texts, is_query=is_query)
    from gingham.encoder import load_encoder

    enc = load_encoder(args.model)
    return lambda texts, is_query: enc.encode_queries(texts) if is_query else enc.encode_documents(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="multilingual-e5-small", help="Gingham encoder (folder or e5 alias)")
    parser.add_argument("--pylate-model", default=None, help="encode with this PyLate model instead (needs pylate)")
    parser.add_argument("--index-folder", default=None, help="where to write the index (default: a temp folder)")
    args = parser.parse_args()

    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    documents_ids = [r["_id"] for r in rows]
    encode = encoder(args)
    folder = args.index_folder or tempfile.mkdtemp(prefix="gingham-pylate-")

    index = PLAID(index_folder=folder, index_name="sample", override=True)  # was: pylate.indexes.PLAID(...)
    index.add_documents(documents_ids=documents_ids,
                        documents_embeddings=encode([r["text"] for r in rows], is_query=False))
    queries_embeddings = encode(QUERIES, is_query=True)

    if importlib.util.find_spec("pylate") is not None:
        from pylate import retrieve

        results = retrieve.ColBERT(index=index).retrieve(queries_embeddings=queries_embeddings, k=3)
        print("retrieved with pylate.retrieve.ColBERT over a Gingham index")
    else:
        results = index(queries_embeddings=queries_embeddings, k=3)
        print("pylate is not installed: called the index as pylate.retrieve.ColBERT does")
    for query, hits in zip(QUERIES, results):
        print(f"\n{query}")
        for hit in hits:
            print(f"  {hit['score']:7.3f}  {hit['id']}")


if __name__ == "__main__":
    main()
