"""Storage: the index directory on disk (:mod:`.disk`: manifest, generations, the write lock), the
in-memory view of one generation (:mod:`.segment`: segments and snapshots), commits (:mod:`.commits`), checks
of what is read (:mod:`.consistency`), rewrites of committed segments (:mod:`.compaction`, :mod:`.rebuild`),
and each segment's SQLite database of texts and metadata (:mod:`.docstore`). Imports nothing above the codec."""
