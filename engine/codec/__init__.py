"""The codec: how token vectors become a centroid code and packed residuals, and back (:mod:`.residual`), and
how its codebook is trained (:mod:`.training`, over :mod:`.kmeans`; nearest-centroid assignment in
:mod:`.assign`)."""
