"""Drop-ins for the frameworks RAG pipelines are built with. Each module imports its framework lazily.

- :mod:`.pylate`: :class:`~gingham.integrations.pylate.PLAID`, an index with the interface ``pylate.retrieve.ColBERT``
  calls (``add_documents``, ``remove_documents``, ``__call__``), so a PyLate pipeline swaps its index for Gingham's.
  Needs only numpy (PyLate itself is not imported).
- :mod:`.langchain`: :class:`~gingham.integrations.langchain.GinghamVectorStore` and
  :class:`~gingham.integrations.langchain.GinghamRetriever` (needs ``pip install 'gingham[langchain]'``).
"""
