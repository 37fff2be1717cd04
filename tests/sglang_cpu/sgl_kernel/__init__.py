"""A plain-torch stand-in for the CPU build of `sgl_kernel`, for the real-SGLang test tier only.

SGLang's CPU path imports a few `*_cpu` kernels unconditionally; the CPU build of sgl-kernel is not on PyPI
(only buildable from SGLang's source tree) and the PyPI `sglang-kernel` wheel is CUDA-only. On CPUs without
AMX SGLang runs its own torch-native layers and calls only `assign_req_to_token_pool_cpu` from here. Any
other `*_cpu` name imports, but raises if called, so a new dependency shows up as a clear error rather than
a wrong result. Put this directory on the server's PYTHONPATH (tests/test_sglang_real.py does).
"""

from __future__ import annotations

import torch

__version__ = "0.0.0+ttslab-cpu-stand-in"


def assign_req_to_token_pool_cpu(
    req_pool_indices: torch.Tensor,
    req_to_token: torch.Tensor,
    start_offset: torch.Tensor,
    end_offset: torch.Tensor,
    out_cache_loc: torch.Tensor,
    pool_len: int,
) -> None:
    """For each request row: req_to_token[row, start:end] = its slice of out_cache_loc.

    `out_cache_loc` holds the new KV slots of all rows back to back, in row order (what SGLang's Triton
    kernel `assign_req_to_token_pool` reads).
    """
    lengths = (end_offset - start_offset).tolist()
    starts = start_offset.tolist()
    rows = req_pool_indices.tolist()
    pos = 0
    for row, start, n in zip(rows, starts, lengths):
        if n > 0:
            if start + n > pool_len:
                raise ValueError(f"request row {row}: slots {start}..{start + n} beyond the pool width {pool_len}")
            req_to_token[row, start : start + n] = out_cache_loc[pos : pos + n].to(req_to_token.dtype)
        pos += n


def __getattr__(name: str):
    if name.endswith("_cpu"):
        def missing(*args, **kwargs):
            raise NotImplementedError(f"sgl_kernel.{name} is not provided by ttslab's CPU stand-in "
                                      f"(tests/sglang_cpu/sgl_kernel); SGLang called it on this machine")
        missing.__name__ = name
        return missing
    raise AttributeError(f"module 'sgl_kernel' (ttslab's CPU stand-in) has no attribute {name!r}")
