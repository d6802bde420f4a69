"""A register-blocked AVX-512 product of our own against torch's ``mm`` (MKL) on the compiled step's three product shapes.

The compiled step's large products are the critics' 128x128 layers at the tutorial's sizes (batch 64): the forward
``H @ W.T`` (64x128x128), the backward to the layer's input ``dZ @ W`` (64x128x128) and the weight gradient
``dZ.T @ H`` (128x64x128). On AMD CPUs torch's products are MKL's AVX2 kernels (``mkl_blas_def_sgemm_kernel_0_zen``),
while SBX's run in XLA's YNNPACK AVX-512 kernels (a perf profile, docs/changelog.md). This script measures how far a plain
AVX-512 kernel gets on these shapes: ``C = A @ B`` with ``A`` read by broadcasts (any strides, so ``dZ.T`` needs no
copy), ``B`` row-major (``W.T`` stored transposed for the forward product), tiles of ``MR`` rows by ``16 * NV``
columns kept in registers over the whole inner dimension, no packing. It is compiled here with the machine's C
compiler (``cc -O3 -march=x86-64-v4``) and called through ``ctypes`` with the repetitions inside C, so no call cost
is counted on either side beyond torch's own per-call work (which the compiled step pays too).

    python benchmarks/gemm_kernel.py                 # core 0, best of 7 timings of 2,000 products each

It prints the time the compiled engine's own kernel (``sb3_tutorial_sac.engines.compiled.kernels``, an 8x32 tile of this
kind) takes to build, then GFLOP/s per shape for ``torch.mm`` and each tile, and the largest difference from
``torch.mm``'s result.
"""

import argparse
import ctypes
import os
import subprocess
import tempfile
import time

from common import add_core_argument, one_thread, pin_from_argv

SOURCE = r"""
#include <immintrin.h>
/* C[M,N] = A[M,K] . B[K,N]: A(m,k) at A[m*sam + k*sak], B row-major (row stride sbk), C row-major (stride scm).
   A tile of MR rows by 16*NV columns in registers over all of K; M % MR == 0 and N % (16*NV) == 0. */
#define TILE(MR, NV)                                                                                              \
static void tile_##MR##x##NV(int K, const float* A, long sam, long sak, const float* B, long sbk, float* C,       \
                             long scm) {                                                                         \
    __m512 c[MR][NV];                                                                                             \
    for (int i = 0; i < MR; i++) for (int j = 0; j < NV; j++) c[i][j] = _mm512_setzero_ps();                      \
    for (int k = 0; k < K; k++) {                                                                                 \
        const float* b = B + k * sbk;                                                                             \
        __m512 bv[NV];                                                                                            \
        for (int j = 0; j < NV; j++) bv[j] = _mm512_loadu_ps(b + 16 * j);                                         \
        const float* a = A + k * sak;                                                                             \
        for (int i = 0; i < MR; i++) {                                                                            \
            __m512 ai = _mm512_set1_ps(a[i * sam]);                                                               \
            for (int j = 0; j < NV; j++) c[i][j] = _mm512_fmadd_ps(ai, bv[j], c[i][j]);                           \
        }                                                                                                         \
    }                                                                                                             \
    for (int i = 0; i < MR; i++) for (int j = 0; j < NV; j++) _mm512_storeu_ps(C + i * scm + 16 * j, c[i][j]);   \
}                                                                                                                 \
void gemm_##MR##x##NV(int reps, int M, int N, int K, const float* A, long sam, long sak, const float* B, long sbk, \
                      float* C, long scm) {                                                                      \
    for (int r = 0; r < reps; r++)                                                                                \
        for (int n = 0; n < N; n += 16 * NV)                                                                      \
            for (int m = 0; m < M; m += MR)                                                                       \
                tile_##MR##x##NV(K, A + m * sam, sam, sak, B + n, sbk, C + m * scm + n, scm);                     \
}
TILE(8, 2)
TILE(4, 4)
TILE(16, 1)
"""

TILES = {"8x32": (8, 32), "4x64": (4, 64), "16x16": (16, 16)}


def build(folder: str) -> ctypes.CDLL:
    source, library = os.path.join(folder, "gemm.c"), os.path.join(folder, "libgemm.so")
    with open(source, "w") as file:
        file.write(SOURCE)
    subprocess.run(["cc", "-O3", "-march=x86-64-v4", "-shared", "-fPIC", "-o", library, source], check=True)
    return ctypes.CDLL(library)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_core_argument(parser, 0)
    parser.add_argument("--reps", type=int, default=2000, help="products per timing")
    parser.add_argument("--timings", type=int, default=7, help="timings per figure (best)")
    args = parser.parse_args()
    core = pin_from_argv(0)
    import torch as th  # after pinning: every thread torch starts stays on the core

    one_thread()
    with tempfile.TemporaryDirectory() as folder:
        # the package's own kernel (sb3_tutorial_sac.engines.compiled.kernels), built as the compiled engine builds it; the
        # compiler's lookup first, which Inductor's compile does anyway (and caches)
        from torch._inductor.cpp_builder import get_cpp_compiler

        from sb3_tutorial_sac.engines.compiled import kernels

        reason = kernels.unavailable()
        if reason is not None:  # this script's own tiles are AVX-512 too: nothing here can run
            raise SystemExit(f"gemm_kernel.py measures AVX-512 kernels, which this machine cannot run: {reason}")
        get_cpp_compiler()
        start = time.perf_counter()
        kernels.load(os.path.join(folder, "package"))
        print(f"the kernel (engines.compiled.kernels) built and loaded in {time.perf_counter() - start:.2f} s")
        library = build(folder)
        generator = th.Generator().manual_seed(0)
        hidden, weight, grad = (th.randn(shape, generator=generator) for shape in ((64, 128), (128, 128), (64, 128)))
        weight_t = weight.t().contiguous()
        out, out_w = th.empty(64, 128), th.empty(128, 128)
        # name: (M, N, K, A, A's strides (m, k), B, C, torch's product)
        cases = {
            "forward H @ W.T (64x128x128)":
                (64, 128, 128, hidden, (128, 1), weight_t, out, lambda: th.mm(hidden, weight.t(), out=out)),
            "input gradient dZ @ W (64x128x128)":
                (64, 128, 128, grad, (128, 1), weight, out, lambda: th.mm(grad, weight, out=out)),
            "weight gradient dZ.T @ H (128x64x128)":
                (128, 128, 64, grad, (1, 128), hidden, out_w, lambda: th.mm(grad.t(), hidden, out=out_w)),
        }  # fmt: skip
        print(f"torch {th.__version__}, one thread, core {core}; GFLOP/s, best of {args.timings} x {args.reps} products")
        for name, (m, n, k, a, (sam, sak), b, c, product) in cases.items():
            flops = 2 * m * n * k
            expected = product().clone()
            best = float("inf")
            for _ in range(args.timings):
                start = time.perf_counter()
                for _ in range(args.reps):
                    product()
                best = min(best, (time.perf_counter() - start) / args.reps)
            line = [f"torch mm {flops / best / 1e9:5.1f}"]
            address = ctypes.c_void_p
            pointers = (address(a.data_ptr()), sam, sak, address(b.data_ptr()), n, address(c.data_ptr()), n)
            for tile, (rows, columns) in TILES.items():
                if m % rows or n % columns:
                    continue
                kernel = getattr(library, f"gemm_{rows}x{columns // 16}")
                kernel.argtypes = [ctypes.c_int] * 4 + [ctypes.c_void_p, ctypes.c_long, ctypes.c_long, ctypes.c_void_p,
                                                        ctypes.c_long, ctypes.c_void_p, ctypes.c_long]  # fmt: skip
                c.zero_()
                kernel(1, m, n, k, *pointers)
                difference = (c - expected).abs().max().item()
                best = float("inf")
                for _ in range(args.timings):
                    start = time.perf_counter()
                    kernel(args.reps, m, n, k, *pointers)
                    best = min(best, (time.perf_counter() - start) / args.reps)
                line.append(f"{tile} {flops / best / 1e9:5.1f} (max difference {difference:.1e})")
            print(f"  {name}: " + " | ".join(line))


if __name__ == "__main__":
    main()
