"""Standalone driver run by ``gingham.evaluation.peers`` inside PyLate's own virtual environment.

Reads embeddings from .npy files (never imports gingham), builds one of PyLate's indexes, times searches through
PyLate's ColBERT retriever and writes JSON in the same format as ``fastplaid.py``.
Usage: python pylate_indexes.py INPUT_DIR OUTPUT_JSON --config '{"index": "voyager", "top_k": 10, ...}'
INPUT_DIR holds docs.npy (flat float32 tokens), doc_lengths.npy, queries.npy, query_lengths.npy.

Config keys: ``index`` ("voyager" or "plaid"), ``top_k``, ``warm``, ``n_single``, ``threads`` (torch threads),
``build`` (index constructor options: Voyager ``M`` / ``ef_construction``; PLAID ``kmeans_niters``, ``seed``...),
``nbits`` (PLAID only) and ``settings``, a list of search settings, each timed in turn:

- voyager: ``k_token`` (HNSW neighbours fetched per query token, the retriever's candidate pool before its exact
  MaxSim rerank over the stored float32 vectors), ``ef_search`` (HNSW beam width), ``batch_size`` (queries per
  retriever batch);
- plaid: ``n_ivf_probe``, ``n_full_scores``, ``batch_size``, ``num_threads`` (PyLate's PLAID options).
"""

import os
import shutil
import sys
import time

from peer_protocol import dir_bytes, load_inputs, parse_args, report, timed_run, version

SETTING_KEYS = {"voyager": {"k_token", "ef_search", "batch_size"},
                "plaid": {"n_ivf_probe", "n_full_scores", "batch_size", "num_threads"}}


def make_retriever(index):
    from pylate import retrieve

    class QuietColBERT(retrieve.ColBERT):  # PyLate's hook for its per-call progress bar
        def _show_progress(self) -> bool:
            return False

    return QuietColBERT(index=index)


def main() -> None:
    inputs, output, cfg = parse_args()
    kind = cfg.get("index", "voyager")
    if kind not in SETTING_KEYS:
        sys.exit(f"unknown PyLate index {kind!r}; expected one of {sorted(SETTING_KEYS)}")
    all_settings = cfg.get("settings") or [{}]
    for s in all_settings:
        unknown = set(s) - SETTING_KEYS[kind]
        if unknown:
            sys.exit(f"unknown search settings {sorted(unknown)} for PyLate {kind}; "
                     f"known: {sorted(SETTING_KEYS[kind])}")
    import torch
    from pylate import indexes

    threads = cfg.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    top_k, warm, n_single = int(cfg.get("top_k", 10)), int(cfg.get("warm", 3)), int(cfg.get("n_single", 50))
    build = dict(cfg.get("build", {}))
    docs, queries = load_inputs(inputs)
    dim = int(docs[0].shape[1])
    ids = list(range(len(docs)))  # PyLate keys documents by these ids: they come back as result positions
    folder = os.path.join(inputs, f"pylate-{kind}-index")
    shutil.rmtree(folder, ignore_errors=True)

    if kind == "voyager":
        def open_index(settings, override=False):
            return indexes.Voyager(index_folder=folder, index_name="voyager", override=override, embedding_size=dim,
                                   ef_search=int(settings.get("ef_search", 200)), **build)

        def search_kwargs(settings):
            return {k: int(settings[k]) for k in ("k_token", "batch_size") if k in settings}

        t0 = time.perf_counter()
        index = open_index({}, override=True)
        index.add_documents(documents_ids=ids, documents_embeddings=docs)
        build_s = time.perf_counter() - t0
    else:
        nbits = int(cfg.get("nbits", 4))

        def open_index(settings, override=False):
            return indexes.PLAID(index_folder=folder, index_name="plaid", override=override, nbits=nbits,
                                 show_progress=False, device="cpu", **build, **settings)

        def search_kwargs(settings):
            return {}

        docs_t = [torch.from_numpy(d) for d in docs]
        t0 = time.perf_counter()
        index = open_index({}, override=True)
        index.add_documents(documents_ids=ids, documents_embeddings=docs_t)
        build_s = time.perf_counter() - t0
        del docs_t
    del index
    index_bytes = dir_bytes(folder)
    n_tokens = int(sum(len(d) for d in docs))
    del docs

    runs = []
    for settings in all_settings:
        retriever = make_retriever(open_index(settings))  # reopens the built index with these search options
        kw = dict(k=top_k, device="cpu", **search_kwargs(settings))

        def run(qs):
            return [[h["id"] for h in hits] for hits in retriever.retrieve(queries_embeddings=qs, **kw)]

        runs.append(timed_run(run, queries, settings, top_k, warm, n_single))

    versions = {"pylate": version("pylate"), "torch": torch.__version__, "python": sys.version.split()[0]}
    versions.update({"voyager": version("voyager")} if kind == "voyager" else {"fast-plaid": version("fast-plaid")})
    report(output, engine=f"pylate-{kind}", index=kind, versions=versions, torch_threads=torch.get_num_threads(),
           build=build, build_s=build_s, n_tokens=n_tokens, index_bytes=index_bytes, runs=runs,
           **({"nbits": nbits} if kind == "plaid" else {}))


if __name__ == "__main__":
    main()
