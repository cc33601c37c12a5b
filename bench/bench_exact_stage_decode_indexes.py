"""Build the hard (10k docs) and easy (20k docs) synthetic indexes once and save their queries, for A/B timing."""
import numpy as np, gingham, sys, time
from gingham.evaluation.synthetic import make_hard_corpus, make_hard_queries, make_corpus, make_queries
out = "/work/bo/synth"
import os; os.makedirs(out, exist_ok=True)
for name, mk, mq, n in (("hard", make_hard_corpus, make_hard_queries, 10_000), ("easy", make_corpus, make_queries, 20_000)):
    corpus = mk(n, seed=0)
    queries, _ = mq(corpus, 200, seed=1)
    np.save(f"{out}/{name}-q.npy", np.stack(queries))
    for nb in ((2,) if name == "hard" else (2, 4)):
        t = time.time()
        kw = {"kmeans": "two-level"} if name == "hard" else {}
        ix = gingham.Index.create(f"{out}/{name}-ix{nb}", corpus.tokens, lengths=corpus.lengths, nbits=nb, show_progress=False, overwrite=True)
        print(name, nb, "built", round(time.time() - t, 1), "s", ix.info().get("calibration", {}).get("chosen"), flush=True)
