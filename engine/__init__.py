"""Gingham: a PLAID-style compressed late-interaction search engine.

>>> import gingham
>>> index = gingham.Index.create("my-index", doc_embeddings, doc_ids, nbits=2)
>>> results = index.search(query_embeddings, top_k=10)
"""

from gingham._version import __version__
from gingham.common.config import BuildConfig, SearchConfig
from gingham.common.errors import (
    DocumentNotFoundError,
    GinghamError,
    IndexCorruptError,
    IndexFormatError,
    IndexLockedError,
    MissingDependencyError,
)
from gingham.common.results import SearchResults
from gingham.index import Index, exact_search
from gingham.shards.sharded import ShardedIndex

__all__ = [
    "BuildConfig",
    "DocumentNotFoundError",
    "GinghamError",
    "Index",
    "IndexCorruptError",
    "IndexFormatError",
    "IndexLockedError",
    "MissingDependencyError",
    "SearchConfig",
    "SearchResults",
    "ShardedIndex",
    "__version__",
    "exact_search",
]
