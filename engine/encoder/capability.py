"""What the processor in front of us computes natively, and the encoder dtype ``"auto"`` picks from it.

A dtype chosen on one machine can be the slowest on the next: a bf16 ``linear`` runs ~2x faster than fp32 where
the CPU has AVX-512 BF16 or AMX, and several times slower where it must emulate bf16 on AVX2. So ``"auto"`` asks
this machine at run time, never a figure measured elsewhere. Nothing here imports torch at module level.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

#: CPU flags (``/proc/cpuinfo`` names) that decide which encoder paths run natively.
FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni", "avx_vnni")

#: What ``dtype=`` accepts; aliases map to the canonical name recorded in :class:`EncoderConfig`.
DTYPES = {"auto": "auto", "float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16", "int8": "int8"}


@dataclass(frozen=True)
class CpuCapability:
    """The CPU's model name and the flags of :data:`FLAGS_OF_INTEREST` it has."""

    model_name: str
    flags: frozenset

    @property
    def native_bf16(self) -> bool:
        """bf16 matmuls in hardware (AMX tiles or AVX-512 BF16 dot products), not emulated."""
        return bool({"amx_bf16", "avx512_bf16"} & self.flags)

    @property
    def int8_dot(self) -> bool:
        """int8 dot products in one instruction (VNNI or AMX-INT8): where int8 matmuls beat fp32 the most."""
        return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & self.flags)

    def describe(self) -> str:
        flags = " ".join(f for f in FLAGS_OF_INTEREST if f in self.flags) or "none of interest"
        return f"{self.model_name} ({flags})"


def _proc_cpuinfo() -> tuple[str, set[str]]:
    path = Path("/proc/cpuinfo")
    name, flags = "", set()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return name, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not name:
            name = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return name, flags


@functools.lru_cache(maxsize=1)
def cpu_capability() -> CpuCapability:
    """This machine's CPU: ``/proc/cpuinfo`` where there is one, completed by what torch's own probe reports
    (so the answer holds on macOS and Windows too, and agrees with the kernels torch will dispatch)."""
    name, flags = _proc_cpuinfo()
    try:
        import torch

        probes = {"avx2": "_is_avx2_supported", "avx512f": "_is_avx512_supported",
                  "avx512_bf16": "_is_avx512_bf16_supported", "amx_bf16": "_is_amx_tile_supported"}
        for flag, probe in probes.items():
            fn = getattr(torch.cpu, probe, None)
            if fn is not None and fn():
                flags.add(flag)
    except ImportError:  # pragma: no cover - the encoder needs torch anyway
        pass
    return CpuCapability(name or platform.processor() or platform.machine() or "unknown CPU",
                         frozenset(f for f in flags if f in FLAGS_OF_INTEREST))


def resolve_dtype(dtype: str, device: str = "cpu", *, capability: CpuCapability | None = None,
                  cuda_bf16: bool | None = None) -> str:
    """The concrete dtype for ``dtype`` on ``device``: ``"auto"`` resolved, aliases canonicalised.

    ``"auto"``: on a CUDA GPU, bfloat16 where the GPU computes it (Ampere and later), else float32; on a CPU,
    bfloat16 where it computes bf16 natively (AMX or AVX-512 BF16), else float32. int8 is never picked by
    ``"auto"``: its error is measured on multilingual-e5-small only (see ``docs/benchmarks/encode-production``),
    not on the weights of the model being loaded, so it is a choice the caller makes (``dtype="int8"``).
    ``capability`` / ``cuda_bf16`` replace the probes (tests fake each machine through them).
    """
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    dtype = DTYPES[dtype]
    if dtype != "auto":
        return dtype
    if str(device).startswith("cuda"):
        if cuda_bf16 is None:
            import torch

            cuda_bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        return "bfloat16" if cuda_bf16 else "float32"
    if str(device) != "cpu" and not str(device).startswith("cpu:"):
        return "float32"  # mps, xpu, ...: no capability probe here; the reference path
    cap = capability if capability is not None else cpu_capability()
    return "bfloat16" if cap.native_bf16 else "float32"


__all__ = ["CpuCapability", "DTYPES", "FLAGS_OF_INTEREST", "cpu_capability", "resolve_dtype"]
