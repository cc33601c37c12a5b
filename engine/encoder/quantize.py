"""int8 linear layers for CPU encoding: int8 weights per output channel, activations quantised per token at run
time, products summed in int32 (``torch._int_mm``: VNNI / AMX-INT8 where the CPU has them).

Why not ``torch.ao.quantization.quantize_dynamic``: it is deprecated (torch 2.10 announced its removal), quantises
each activation matrix with ONE scale (a token with a large activation coarsens every other token's), and on
AVX-512 VNNI it ran 2-3x slower than ``torch._int_mm`` on the same shapes (``docs/benchmarks/encode-production``).
Here each token gets its own scale and each output channel its own, which is what keeps the vectors close to
fp32's (tests/encoder/test_fast_paths.py pins the error on the tiny checkpoints).

Only the backbone's ``nn.Linear`` layers are replaced (they are ~all of the work); embeddings, norms, the short
convolutions, attention's softmax and the final projection stay float32.
"""

from __future__ import annotations


def _torch():
    from gingham.common.errors import require

    return require("torch", "encoder")


def int8_supported() -> str | None:
    """None when this torch can run int8 linears on the CPU, else why not (with the fix)."""
    torch = _torch()
    if not hasattr(torch, "_int_mm"):
        return f"torch {torch.__version__} lacks torch._int_mm; install torch >= 2.4 or use dtype='float32'"
    try:
        a = torch.ones((2, 8), dtype=torch.int8)
        out = torch._int_mm(a, torch.ones((8, 3), dtype=torch.int8))
    except (RuntimeError, NotImplementedError) as exc:
        return f"torch {torch.__version__} cannot multiply int8 matrices on the CPU ({exc}); use dtype='float32'"
    if int(out[0, 0]) != 8:
        return "torch._int_mm gave a wrong product on this machine; use dtype='float32'"
    return None


def _module_class():
    torch = _torch()

    class Int8Linear(torch.nn.Module):
        """``y = x @ W.T + b`` with ``W`` int8 (one scale per output channel) and ``x`` quantised per row."""

        def __init__(self, linear):
            super().__init__()
            w = linear.weight.detach().to(torch.float32)
            scale = w.abs().amax(dim=1).clamp_min(1e-12) / 127.0
            q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
            self.in_features, self.out_features = linear.in_features, linear.out_features
            self.register_buffer("weight_t", q.t().contiguous())  # (in, out): _int_mm's layout
            self.register_buffer("weight_scale", scale.contiguous())
            bias = linear.bias
            self.register_buffer("bias", None if bias is None else bias.detach().to(torch.float32).clone())

        def forward(self, x):
            shape = x.shape
            x2 = x.reshape(-1, shape[-1]).to(torch.float32)
            scale = x2.abs().amax(dim=1, keepdim=True).clamp_min_(1e-12).div_(127.0)
            q = torch.round(x2 / scale).clamp_(-127, 127).to(torch.int8)
            y = torch._int_mm(q, self.weight_t).to(torch.float32)
            y.mul_(scale).mul_(self.weight_scale)
            if self.bias is not None:
                y.add_(self.bias)
            return y.reshape(*shape[:-1], self.out_features).to(x.dtype)

        def extra_repr(self) -> str:
            return f"in_features={self.in_features}, out_features={self.out_features}, int8"

    return Int8Linear


_CLASS = None


def int8_linear(linear):
    """An int8 replacement of one ``torch.nn.Linear`` (float weights read once, then dropped by the caller)."""
    global _CLASS
    if _CLASS is None:
        _CLASS = _module_class()
    return _CLASS(linear)


def quantize_linears(model) -> int:
    """Replace every ``torch.nn.Linear`` inside ``model`` by its int8 version, in place; returns how many."""
    torch = _torch()
    targets = [(name, module) for name, module in model.named_modules() if type(module) is torch.nn.Linear]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, int8_linear(module))
    return len(targets)


__all__ = ["int8_linear", "int8_supported", "quantize_linears"]
