"""A Gingham index as a LangChain vector store and retriever (needs ``pip install 'gingham[langchain,encoder]'``).

    python examples/langchain_example.py [--model FOLDER] [--index-dir DIR]

Builds a store from the bundled sample with metadata, searches it across languages (with and without a metadata
filter), adds, replaces and deletes documents by id, and runs a retriever as a LangChain runnable.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from langchain_core.documents import Document

from gingham.integrations.langchain import GinghamRetriever, GinghamVectorStore

SAMPLE = Path(__file__).with_name("sample.jsonl")
SCIENCE = {"photosynthesis", "penicillin", "dna", "vaccines", "gravity", "volcano"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="multilingual-e5-small", help="encoder (folder or the e5 alias)")
    parser.add_argument("--index-dir", default=None, help="where to write the index (default: a temp folder)")
    args = parser.parse_args()
    path = Path(args.index_dir or tempfile.mkdtemp(prefix="gingham-langchain-")) / "index"

    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    store = GinghamVectorStore.from_texts(
        [r["text"] for r in rows], ids=[r["_id"] for r in rows], path=path, model=args.model, overwrite=True,
        metadatas=[{"topic": "science" if r["_id"] in SCIENCE else "other"} for r in rows])
    print(store)

    for doc, score in store.similarity_search_with_score("Wer hat das Penicillin entdeckt?", k=2):
        print(f"{score:7.3f}  {doc.id:<14} {doc.metadata}  {doc.page_content[:60]}…")
    hits = store.similarity_search("¿Qué montaña es la más alta?", k=2, filter={"topic": "science"})
    print("filtered to science:", [d.id for d in hits])

    store.add_documents([Document(id="k2", page_content="K2 is the second-highest mountain on Earth, in the "
                                  "Karakoram range.", metadata={"topic": "other"})])
    print("after add:", [d.id for d in store.similarity_search("second highest mountain", k=2)])
    store.delete(["k2"])
    print("after delete:", [d.id for d in store.similarity_search("second highest mountain", k=2)])

    retriever = GinghamRetriever(store=store, k=1, include_score=True)
    for doc in retriever.invoke("Quand l'homme a-t-il marché sur la Lune ?"):
        print("retriever:", doc.id, round(doc.metadata["score"], 3))
    print("as_retriever:", [d.id for d in store.as_retriever(search_kwargs={"k": 2}).invoke("café")])


if __name__ == "__main__":
    main()
