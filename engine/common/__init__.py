"""The shared vocabulary of every layer: configs (:mod:`.config`), errors (:mod:`.errors`), search results
(:mod:`.results`), document ids (:mod:`.ids`), input validation at the API (:mod:`.validation`) and progress
bars (:mod:`.progress`). Imports nothing of Gingham's but the kernels."""
