"""Building large indexes from sources: streaming builds within a memory budget (:mod:`.streaming`), the
sources they read (:mod:`.sources`, files of texts and ids in :mod:`.corpus`), and the same on Ray
(:mod:`.distributed`, :mod:`.ray_encode`). A build commits through storage and opens the result as an
:class:`gingham.Index`."""
