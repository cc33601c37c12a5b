"""What this CPU can give the encoder: measured matmul peaks (fp32, bf16, int8) at the encoder's shapes, memory
bandwidth, and where an LFM2-ColBERT-350M-size forward spends its time (profile by operator kind).

    python bench/bench_matmul_peak.py --out bench/out/matmul-peak [--profile-model lfm2-colbert-350m] [--dtypes float32,int8]

Shapes: (M x 1024) @ (1024 x 4608), LFM2's feed-forward, for M = 32 (one query), 512 and 4096 (documents); the
weights cycle through more matrices than the last-level cache holds, as in a real forward. Peak = best of
``--reps``. Bandwidth: a 512 MiB copy. The profile (torch.profiler) groups self CPU time into linear layers,
attention, short convolution and the rest, for one 32-token query and for 4 documents of 512 tokens.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import colbert_architectures  # noqa: E402
import machine_info  # noqa: E402


def peaks(reps: int) -> dict:
    import torch

    K, N, n_mats = 1024, 4608, 12  # 12 x 4608 x 1024 fp32 = 226 MB, beyond any L3 cache
    out = {}
    for M in (32, 512, 4096):
        xf = torch.randn(M, K)
        xb = xf.bfloat16()
        xq = torch.randint(-127, 128, (M, K), dtype=torch.int8)
        mats = {"float32": [torch.randn(N, K) for _ in range(n_mats)]}
        mats["bfloat16"] = [w.bfloat16() for w in mats["float32"]]
        mats["int8"] = [torch.randint(-127, 128, (N, K), dtype=torch.int8).t() for _ in range(n_mats)]
        fns = {"float32": lambda w: torch.nn.functional.linear(xf, w),
               "bfloat16": lambda w: torch.nn.functional.linear(xb, w),
               "int8": lambda w: torch._int_mm(xq, w)}
        row = {}
        with torch.inference_mode():
            for name, fn in fns.items():
                for w in mats[name][:2]:
                    fn(w)
                best = float("inf")
                for _ in range(reps):
                    t = time.perf_counter()
                    for w in mats[name]:
                        fn(w)
                    best = min(best, (time.perf_counter() - t) / n_mats)
                row[name] = {"ms": best * 1e3, "gops": 2 * M * K * N / best / 1e9}
        out[str(M)] = row
        print(M, {k: f"{v['gops']:.0f} G/s" for k, v in row.items()}, machine_info.loadavg(), flush=True)
    return out


def bandwidth(reps: int) -> float:
    import torch

    a = torch.empty(512 * 2**20 // 4)
    b = torch.empty_like(a)
    a.fill_(1.0)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        b.copy_(a)
        best = min(best, time.perf_counter() - t)
    return 2 * a.numel() * 4 / best / 1e9  # read + write


def _kind(name: str) -> str:
    if name in ("aten::addmm", "aten::mm", "aten::_int_mm", "aten::linear", "aten::matmul", "aten::bmm"):
        return "linear layers"
    if "attention" in name or name == "aten::_softmax":
        return "attention"
    if "convolution" in name or name == "aten::conv1d":
        return "short convolution"
    if name in ("aten::amax", "aten::round", "aten::clamp_", "aten::div", "aten::abs", "aten::_to_copy", "aten::to",
                "aten::copy_", "aten::mul_"):
        return "int8 quantise / casts / copies"
    return "other (norms, activations, masks, tokeniser-side tensors)"


def profile(model: str, dtype: str) -> dict:
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from gingham.encoder import load_encoder

    enc = load_encoder(str(colbert_architectures.build(model)), dtype=dtype)
    q = ["what is the capital city of the largest country in south america"]
    doc = " ".join(["late interaction keeps one vector per token and scores with maxsim"] * 60)
    out = {}
    for what, fn in (("1 query (32 tokens)", lambda: enc.encode_queries(q)),
                     ("4 documents x 512 tokens", lambda: enc.encode_documents([doc] * 4))):
        fn()
        with torch_profile(activities=[ProfilerActivity.CPU]) as p:
            t = time.perf_counter()
            fn()
            wall = time.perf_counter() - t
        kinds: dict = {}
        for ev in p.key_averages():
            kinds[_kind(ev.key)] = kinds.get(_kind(ev.key), 0.0) + ev.self_cpu_time_total / 1e3
        total = sum(kinds.values())
        out[what] = {"wall_ms": wall * 1e3, "share": {k: v / total for k, v in sorted(kinds.items())}}
        print(model, dtype, what, f"{wall * 1e3:.0f} ms", {k: f"{v / total:.0%}" for k, v in kinds.items()},
              flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench/out/matmul-peak"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--profile-model", default="lfm2-colbert-350m")
    ap.add_argument("--dtypes", default="float32,int8,bfloat16")
    ap.add_argument("--skip-peaks", action="store_true")
    args = ap.parse_args()
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    args.out.mkdir(parents=True, exist_ok=True)
    r = {"machine": machine_info.machine()}
    print(machine_info.header(r["machine"]), flush=True)
    if not args.skip_peaks:
        r["peaks"] = peaks(args.reps)
        r["copy_bandwidth_gb_s"] = bandwidth(args.reps)
        print(f"copy bandwidth {r['copy_bandwidth_gb_s']:.1f} GB/s", flush=True)
    if args.profile_model:
        r["profile"] = {d: profile(args.profile_model, d) for d in args.dtypes.split(",")}
    r["loadavg_end"] = machine_info.loadavg()
    (args.out / "results.json").write_text(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
