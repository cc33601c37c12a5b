"""Shards: one corpus split over several indexes with one codebook (:mod:`.sharding` builds them), searched
together with merged results, in threads (:mod:`.sharded`) or on Ray (:mod:`.ray_shards`)."""
