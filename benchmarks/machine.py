"""What every benchmark prints first: the CPU's flags that matter for these kernels and its measured GEMM peak.

Machines differ (some CPUs have AVX-512 BF16 or AMX, others AVX2 only, where bf16 is emulated), so a throughput
number means little without the machine's own limit beside it. `machine_report()` prints the flags and the peak
of a large square matmul in fp32 and bf16 (torch, all threads), and returns the peaks so a benchmark can report
its throughput as a fraction of them (`fraction_of_peak`).

    from machine import machine_report, fraction_of_peak
    peak = machine_report()
    print(f"... {flops_per_s / 1e9:.1f} GFLOP/s = {fraction_of_peak(flops_per_s, peak):.1%} of the fp32 GEMM peak")
"""

from __future__ import annotations

import os
import platform
import time

import torch

FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def cpu_flags() -> dict[str, bool]:
    try:
        with open("/proc/cpuinfo") as f:
            present = set(next(line for line in f if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        present = set()
    return {flag: flag in present for flag in FLAGS}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line for line in f if line.startswith("model name")).split(":", 1)[1].strip()
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def gemm_peak(dtype: torch.dtype = torch.float32, n: int = 1024, seconds: float = 1.0,
              device: str = "cpu") -> float:
    """FLOP/s of repeated n x n matmuls (2 n^3 FLOPs each), best of the timed repeats."""
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        for _ in range(4):
            a @ b
        sync()
        best = max(best, 4 * 2 * n ** 3 / (time.perf_counter() - t0))
    return best


def machine_report(device: str = "cpu") -> dict[str, float]:
    """Prints the machine line, the flags and the GEMM peaks; returns {"fp32": FLOP/s, "bf16": FLOP/s}."""
    flags = cpu_flags()
    print(f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads)")
    print("cpu flags: " + ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in flags.items()))
    peak = {"fp32": gemm_peak(torch.float32, device=device), "bf16": gemm_peak(torch.bfloat16, device=device)}
    print(f"GEMM peak ({device}, 1024^3 matmul): fp32 {peak['fp32'] / 1e9:.1f} GFLOP/s, "
          f"bf16 {peak['bf16'] / 1e9:.1f} GFLOP/s" + ("" if flags["avx512_bf16"] or flags["amx_bf16"] or
                                                     device != "cpu" else " (bf16 emulated: no AVX-512 BF16/AMX)"))
    return peak


def fraction_of_peak(flops_per_second: float, peak: dict[str, float], dtype: str = "fp32") -> float:
    return flops_per_second / peak[dtype]


if __name__ == "__main__":
    machine_report()
