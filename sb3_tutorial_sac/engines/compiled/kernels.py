"""
The compiled step's batched matrix product as an AVX-512 kernel of our own, called by the compiled package directly.

On AMD CPUs torch's products are MKL's AVX2 kernels; at the step's sizes (the critics' 128x128 layers on a batch of
64) a plain register-blocked AVX-512 kernel runs faster, with the same numbers on these shapes (each output a sum over
the inner dimension in order, with fused multiply-adds; the figures: the changelog's benchmark record).

:func:`avx512_bmm` is a torch operator (``torch.ops.sb3_tutorial_sac.avx512_bmm``) that is ``torch.bmm`` wherever it runs in
Python (eagerly, and on fake tensors when exporting). The step function calls it for the critics' ensemble products
under the compile-only rewrite ``"avx512_bmm"``. When compiling, Inductor is told (``aot_inductor.custom_ops_to_c_shims``)
that the operator has a C function, :data:`SOURCE`'s ``aoti_torch_cpu_avx512_bmm``, which the package then calls with no
dispatcher in between. That function is compiled here once per source and machine (with the C++ compiler Inductor
uses) into Inductor's cache folder and loaded into the process before any package that calls it.

The kernel: ``C[e] = A[e] @ B[e]`` in tiles of 8 rows by 32 columns held in registers over the whole inner dimension,
``A`` read by broadcasts at any strides, ``B`` by rows of 32-column panels: read in place where ``B`` is row-major and
``A`` has fewer than 128 rows, else first copied into a contiguous panel (rows a power of two apart share cache sets at
SB3's sizes; a transposed weight, as the forward products pass it, is copied by 16x16 blocks transposed in registers,
where Inductor would otherwise copy the whole weight transposed first); edge rows one by one and edge columns with
masked loads.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import subprocess
import sys
from typing import NoReturn

import torch as th

from sb3_tutorial_sac.engines.compiled import cache, torch_privates

# the operator: torch.bmm wherever it runs in Python; the compiled package calls the C function below instead
OPERATOR = "sb3_tutorial_sac::avx512_bmm"


@th.library.custom_op(OPERATOR, mutates_args=())
def avx512_bmm(a: th.Tensor, b: th.Tensor) -> th.Tensor:
    """``torch.bmm(a, b)`` (the compiled package runs :data:`SOURCE`'s kernel in its place)."""
    return th.bmm(a, b)


@avx512_bmm.register_fake
def _(a: th.Tensor, b: th.Tensor) -> th.Tensor:
    return a.new_empty(a.shape[0], a.shape[1], b.shape[2])


# the C function's declaration, as Inductor writes it into the package's source (the name: aoti_torch_cpu_ + the
# operator's name)
SHIM_DECLARATION = "AOTITorchError aoti_torch_cpu_avx512_bmm(AtenTensorHandle a, AtenTensorHandle b, AtenTensorHandle* ret0)"

SOURCE = r"""
#include <immintrin.h>
#include <torch/csrc/inductor/aoti_torch/c/shim.h>
#include <vector>

namespace {
// C[m, n] = sum_k A(m, k) B(k, n) for a tile of MR rows by 16 * NV columns: A(m, k) = A[m * sam + k * sak] read by
// broadcasts, B row-major (row stride sbk), C row-major (row stride scm); the sum over k in order, one fused
// multiply-add per term. MASKED: `mask` limits the last vector of each row (edge columns; a masked load in every tile
// costs several times a plain one, so full tiles have none).
template <int MR, int NV, bool MASKED>
inline void tile(long K, const float* A, long sam, long sak, const float* B, long sbk, float* C, long scm,
                 __mmask16 mask) {
    __m512 c[MR][NV];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NV; j++) c[i][j] = _mm512_setzero_ps();
    for (long k = 0; k < K; k++) {
        const float* b = B + k * sbk;
        __m512 bv[NV];
        for (int j = 0; j < NV; j++)
            bv[j] = (MASKED && j == NV - 1) ? _mm512_maskz_loadu_ps(mask, b + 16 * j) : _mm512_loadu_ps(b + 16 * j);
        const float* a = A + k * sak;
        for (int i = 0; i < MR; i++) {
            __m512 ai = _mm512_set1_ps(a[i * sam]);
            for (int j = 0; j < NV; j++) c[i][j] = _mm512_fmadd_ps(ai, bv[j], c[i][j]);
        }
    }
    for (int i = 0; i < MR; i++) {
        for (int j = 0; j < NV; j++) {
            if (MASKED && j == NV - 1)
                _mm512_mask_storeu_ps(C + i * scm + 16 * j, mask, c[i][j]);
            else
                _mm512_storeu_ps(C + i * scm + 16 * j, c[i][j]);
        }
    }
}

template <int NV, bool MASKED>
inline void columns(long M, long K, const float* A, long sam, long sak, const float* B, long sbk, float* C, long scm,
                    __mmask16 mask) {
    long m = 0;
    for (; m + 8 <= M; m += 8) tile<8, NV, MASKED>(K, A + m * sam, sam, sak, B, sbk, C + m * scm, scm, mask);
    for (; m < M; m++) tile<1, NV, MASKED>(K, A + m * sam, sam, sak, B, sbk, C + m * scm, scm, mask);
}
}  // namespace

namespace {
// r[i][j] = r[j][i]: the rows of a 16x16 block become its columns (pairs, then quads of elements interleaved, then lanes)
inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0x88);
        t[4 + i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0xdd);
        t[8 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0x88);
        t[12 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0xdd);
    }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
        r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
    }
}

// B's columns [n, n + width) (width <= 32) as a contiguous panel of K rows of 32: B(k, n) = B[k * sbk + n * sbn]
inline void pack(long K, long width, const float* B, long sbk, long sbn, float* panel) {
    if (sbn == 1) {
        const __mmask16 low = (__mmask16)(width >= 16 ? 0xFFFF : (1u << width) - 1u);
        const __mmask16 high = (__mmask16)(width <= 16 ? 0 : width >= 32 ? 0xFFFF : (1u << (width - 16)) - 1u);
        for (long k = 0; k < K; k++) {
            _mm512_storeu_ps(panel + 32 * k, _mm512_maskz_loadu_ps(low, B + k * sbk));
            _mm512_storeu_ps(panel + 32 * k + 16, _mm512_maskz_loadu_ps(high, B + k * sbk + 16));
        }
    } else if (sbk == 1) {  // a transposed weight: its rows are B's columns, 16 of them by 16 elements transposed at once
        for (long k0 = 0; k0 < K; k0 += 16) {
            const long rows = K - k0 < 16 ? K - k0 : 16;
            const __mmask16 mask = (__mmask16)(rows == 16 ? 0xFFFF : (1u << rows) - 1u);
            for (long j0 = 0; j0 < width; j0 += 16) {
                __m512 r[16];
                for (long j = 0; j < 16; j++)
                    r[j] = j0 + j < width ? _mm512_maskz_loadu_ps(mask, B + (j0 + j) * sbn + k0) : _mm512_setzero_ps();
                transpose16(r);
                for (long k = 0; k < rows; k++) _mm512_storeu_ps(panel + 32 * (k0 + k) + j0, r[k]);
            }
        }
    } else {  // any other strides (not from the step): one element at a time
        for (long k = 0; k < K; k++)
            for (long j = 0; j < width; j++) panel[32 * k + j] = B[k * sbk + j * sbn];
    }
}
}  // namespace

// C = A @ B for one matrix of the batch; B(k, n) = B[k * sbk + n * sbn]. A B that is not row-major, and from 128 rows
// of A on any B, is copied 32-column panel by panel into a contiguous block first: B's rows lie a power of two apart at
// these sizes, so that read in place they share few cache sets and evict each other (measured faster at SB3's sizes, and
// slower than no copy below 128 rows: the changelog's benchmark record). The sums are the same either way.
extern "C" void sb3_tutorial_sac_gemm(long M, long N, long K, const float* A, long sam, long sak, const float* B,
                                      long sbk, long sbn, float* C) {
    thread_local std::vector<float> panel;
    const bool packed = sbn != 1 || M >= 128;
    if (packed && (long)panel.size() < 32 * K) panel.resize(32 * K);
    long n = 0;
    for (; n + 32 <= N; n += 32) {
        if (packed) {
            pack(K, 32, B + n * sbn, sbk, sbn, panel.data());
            columns<2, false>(M, K, A, sam, sak, panel.data(), 32, C + n, N, 0xFFFF);
        } else {
            columns<2, false>(M, K, A, sam, sak, B + n, sbk, C + n, N, 0xFFFF);
        }
    }
    for (; n < N; n += 16) {
        const long left = N - n < 16 ? N - n : 16;
        const __mmask16 mask = (__mmask16)((1u << left) - 1u);
        if (packed) {
            pack(K, left, B + n * sbn, sbk, sbn, panel.data());
            columns<1, true>(M, K, A, sam, sak, panel.data(), 32, C + n, N, mask);
        } else {
            columns<1, true>(M, K, A, sam, sak, B + n, sbk, C + n, N, mask);
        }
    }
}

// the operator's C function (AOTInductor's C shim convention): a new [E, M, N] tensor, C[e] = A[e] @ B[e]
extern "C" AOTITorchError aoti_torch_cpu_avx512_bmm(AtenTensorHandle a, AtenTensorHandle b, AtenTensorHandle* ret0) {
    int64_t *a_sizes, *a_strides, *b_sizes, *b_strides;
    void *a_data, *b_data, *c_data;
    if (aoti_torch_get_sizes(a, &a_sizes) || aoti_torch_get_strides(a, &a_strides) ||
        aoti_torch_get_sizes(b, &b_sizes) || aoti_torch_get_strides(b, &b_strides) ||
        aoti_torch_get_data_ptr(a, &a_data) || aoti_torch_get_data_ptr(b, &b_data))
        return AOTI_TORCH_FAILURE;
    const int64_t E = a_sizes[0], M = a_sizes[1], K = a_sizes[2], N = b_sizes[2];
    if (b_sizes[0] != E || b_sizes[1] != K) return AOTI_TORCH_FAILURE;
    int64_t sizes[3] = {E, M, N}, strides[3] = {M * N, N, 1};
    if (aoti_torch_empty_strided(3, sizes, strides, aoti_torch_dtype_float32(), aoti_torch_device_type_cpu(), 0, ret0) ||
        aoti_torch_get_data_ptr(*ret0, &c_data))
        return AOTI_TORCH_FAILURE;
    for (int64_t e = 0; e < E; e++)
        sb3_tutorial_sac_gemm(M, N, K, (const float*)a_data + e * a_strides[0], a_strides[1], a_strides[2],
                              (const float*)b_data + e * b_strides[0], b_strides[1], b_strides[2],
                              (float*)c_data + e * M * N);
    return AOTI_TORCH_SUCCESS;
}
"""

_loaded: dict[str, ctypes.CDLL] = {}


class BuildError(RuntimeError):
    """The kernel's library could not be compiled or loaded (the compiler's message in the error)."""


# why the kernel failed to build in this process, if it did: not tried again (each try would first compile a package
# that calls it)
_failure: str | None = None


def unavailable() -> str | None:
    """Why the kernel cannot be used here (None: it can): it needs Linux on x86-64 with AVX-512F, and a build that did
    not fail earlier in this process."""
    if _failure is not None:
        return _failure
    if not sys.platform.startswith("linux"):
        return f"the AVX-512 product is built for Linux, not {sys.platform}"
    if "avx512f" not in cpu_info().get("flags", "").split():
        return "the CPU has no AVX-512F"
    return None


@functools.cache
def cpu_info() -> dict[str, str]:
    """The first ``model name`` and ``flags`` lines of ``/proc/cpuinfo`` by key, stripped (Linux; empty elsewhere), read
    once per process: what the kernel needs (:func:`unavailable`) and what a compiled package's cache key names
    (``engine._cpu_model``)."""
    lines: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            key = line.split(":", 1)[0].strip()
            if key in ("model name", "flags") and key not in lines:
                lines[key] = line.strip()
    return lines


def load(folder: str) -> ctypes.CDLL:
    """
    The kernel's library, compiled into ``folder`` once per source (kept there) and loaded into the process with its
    symbols global, so that a compiled package finds ``aoti_torch_cpu_avx512_bmm``. A library found there is loaded only
    once checked as the one this package built (:func:`~sb3_tutorial_sac.engines.compiled.cache.verified`: this user's own
    file, with the digest recorded when it was built); any other file under its name is removed and the library built
    again. The source and the library are written through unpredictable temporary names renamed into place, never
    through a link planted at their names.

    :raises RuntimeError: where the machine cannot run it (:func:`unavailable`)
    :raises BuildError: where it cannot be compiled or loaded
    """
    reason = unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    torch_dir = os.path.dirname(th.__file__)
    key = hashlib.sha256(f"{SOURCE}|{th.__version__}|{torch_dir}".encode()).hexdigest()[:24]
    if key in _loaded:
        return _loaded[key]
    library = library_path(folder)
    try:
        cache.verified(library)
    except FileNotFoundError:
        built = False
    except (cache.CacheError, OSError):  # planted, or not what was built: never loaded
        cache.discard(library)
        built = False
    else:
        built = True
    if not built:
        os.makedirs(folder, exist_ok=True)
        source = os.path.join(folder, f"kernels-{key}.cpp")
        temporary = cache.temporary_name(library)
        lib_dir = os.path.join(torch_dir, "lib")
        command = [
            torch_privates.get_cpp_compiler(), "-O3", "-mavx512f", "-mfma", "-std=c++17", "-shared", "-fPIC",
            "-I", os.path.join(torch_dir, "include"), source, "-o", temporary,
            "-L", lib_dir, "-ltorch_cpu", f"-Wl,-rpath,{lib_dir}",
        ]  # fmt: skip
        try:
            cache.write_private(source, SOURCE.encode())
            subprocess.run(command, check=True, capture_output=True, text=True)
            cache.publish(temporary, library)  # digest recorded, then renamed: concurrent builds each write a whole file
        except (OSError, subprocess.CalledProcessError) as error:
            message = getattr(error, "stderr", None) or str(error)
            _fail(f"building the AVX-512 product failed: {message.strip()[:300]}", error)
        finally:
            with contextlib.suppress(OSError):
                os.remove(temporary)
    try:
        _loaded[key] = ctypes.CDLL(cache.verified(library), mode=ctypes.RTLD_GLOBAL)
    except (OSError, cache.CacheError) as error:
        _fail(f"loading the AVX-512 product failed: {error}", error)
    return _loaded[key]


def library_path(folder: str) -> str:
    """Where :func:`load` keeps the kernel's library in ``folder`` (its name: a digest of the source and torch's)."""
    torch_dir = os.path.dirname(th.__file__)
    key = hashlib.sha256(f"{SOURCE}|{th.__version__}|{torch_dir}".encode()).hexdigest()[:24]
    return os.path.join(folder, f"kernels-{key}.so")


def _fail(message: str, error: Exception) -> NoReturn:
    global _failure
    _failure = message
    raise BuildError(message) from error


def inductor_configs() -> dict[str, object]:
    """The Inductor options that make a package call the kernel for :func:`avx512_bmm` (after :func:`load`)."""
    return {"aot_inductor.custom_ops_to_c_shims": {th.ops.sb3_tutorial_sac.avx512_bmm.default: [SHIM_DECLARATION]}}
