"""Time PyLate's ColBERT.encode in PyLate's own environment (called by bench/bench_encode.py).

    PYLATE_PYTHON bench/pylate_encode_driver.py INPUTS.json

INPUTS.json: model, dtype, device, threads, batch_size, queries, documents, repeat. Prints one JSON line:
{"queries": {"seconds", "texts_per_s"}, "documents": {...}, "versions": {...}}. Imports nothing from Gingham.
"""

import json
import sys
import time
from importlib import metadata


def main() -> None:
    cfg = json.loads(open(sys.argv[1], encoding="utf-8").read())
    import torch
    from pylate import models

    torch.set_num_threads(int(cfg["threads"]))
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[cfg["dtype"]]
    model = models.ColBERT(cfg["model"], device=cfg["device"], model_kwargs={"torch_dtype": dtype})
    model.eval()
    out = {"versions": {p: metadata.version(p) for p in ("pylate", "transformers", "torch")}}
    for side in ("queries", "documents"):
        texts = cfg[side]

        def encode():
            model.encode(texts, is_query=side == "queries", batch_size=int(cfg["batch_size"]),
                         show_progress_bar=False)
            if cfg["device"].startswith("cuda"):
                torch.cuda.synchronize()

        encode()  # warm-up
        times = []
        for _ in range(int(cfg["repeat"])):
            t0 = time.perf_counter()
            encode()
            times.append(time.perf_counter() - t0)
        best = min(times)
        out[side] = {"seconds": best, "texts_per_s": len(texts) / best}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
