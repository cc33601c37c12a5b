"""What every encoding figure is recorded with: the CPU (``lscpu``'s model name and the flags that decide which
paths run natively), torch's view of it, thread count and the load average at the time."""

from __future__ import annotations

import os
import platform
import subprocess


def lscpu() -> dict:
    out = {"model_name": None, "flags": []}
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name":
            out["model_name"] = value.strip()
        elif key.strip() == "Flags":
            out["flags"] = value.split()
        elif key.strip() == "CPU(s)":
            out["cpus"] = value.strip()
    from gingham.encoder.capability import FLAGS_OF_INTEREST

    out["flags_of_interest"] = [f for f in FLAGS_OF_INTEREST if f in out["flags"]]
    del out["flags"]
    return out


def loadavg() -> list[float]:
    try:
        return [float(x) for x in open("/proc/loadavg").read().split()[:3]]
    except OSError:
        return list(os.getloadavg()) if hasattr(os, "getloadavg") else []


def machine() -> dict:
    import torch

    from gingham.encoder.capability import cpu_capability

    cap = cpu_capability()
    info = {"lscpu": lscpu(), "gingham_capability": cap.describe(), "torch": torch.__version__,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "loadavg": loadavg(),
            # set to emulate a smaller instruction set (e.g. an AVX2-only CPU) for oneDNN, ATen and MKL kernels
            "isa_limits": {k: os.environ[k] for k in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY",
                                                      "MKL_ENABLE_INSTRUCTIONS") if k in os.environ}}
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def header(info: dict) -> str:
    ls = info["lscpu"]
    return (f"CPU: {ls.get('model_name')} ({ls.get('cpus')} CPUs; flags of interest: "
            f"{', '.join(ls['flags_of_interest']) or 'none'}); torch {info['torch']} "
            f"({info['torch_cpu_capability']}, {info['torch_threads']} threads); load average {info['loadavg']}"
            + (f"; kernels limited to {info['isa_limits']}" if info.get("isa_limits") else ""))
