"""The compiled step's AVX-512 product (sb3_tutorial_sac.engines.compiled.kernels): its numbers, and the engine without it."""

import ctypes

import pytest
import torch as th

import torch._inductor
import sb3_tutorial_sac.engines.compiled.engine as compiled_module
from sb3_tutorial_sac.engines.compiled import kernels
from sb3_tutorial_sac.engines.compiled.engine import cache_folder, compile_step
from sb3_tutorial_sac.engines.compiled.rewrites import REWRITES
from tests.helpers import compiled_test_model as _model

# the kernel's own numbers need a CPU that runs it; what the engine does without one is tested on every machine below
needs_avx512 = pytest.mark.skipif(kernels.unavailable() is not None, reason=f"{kernels.unavailable()}")


def _gemm() -> ctypes._CFuncPtr:
    function = kernels.load(cache_folder()).sb3_tutorial_sac_gemm
    function.argtypes = [ctypes.c_long] * 3 + [ctypes.c_void_p, ctypes.c_long, ctypes.c_long, ctypes.c_void_p,
                                               ctypes.c_long, ctypes.c_long, ctypes.c_void_p]  # fmt: skip
    return function


def _product(a: th.Tensor, b: th.Tensor) -> th.Tensor:
    """``a @ b`` by the kernel, with the operands' own strides."""
    out = th.full((a.shape[0], b.shape[1]), float("nan"))
    _gemm()(a.shape[0], b.shape[1], a.shape[1], a.data_ptr(), *a.stride(), b.data_ptr(), *b.stride(), out.data_ptr())
    return out


@needs_avx512
@pytest.mark.parametrize(
    "m, k, n, transpose_a, transpose_b",
    [
        (64, 128, 128, False, False),  # the input gradient dZ @ W
        (64, 128, 128, False, True),  # the forward H @ W.T (B's panels copied by 16x16 transposed blocks)
        (128, 64, 128, True, False),  # the weight gradient dZ.T @ H (A read through its strides)
        (256, 256, 256, False, False),  # SB3's sizes
        (13, 5, 70, False, False),  # edge rows (13 = 8 + 5) and edge columns (70 = 32 + 32 + 6)
        (1, 1, 16, True, True),
        (130, 50, 70, False, False),  # from 128 rows on, B copied panel by panel: full panels and an edge of 6
        (136, 19, 40, True, True),  # the same with a transposed B (an edge of 8)
        (9, 33, 47, True, True),
    ],
)
def test_the_kernel_is_the_product_to_float32_rounding(m, k, n, transpose_a, transpose_b):
    """Every output is the sum over the inner dimension, rounded once per term: within a few float32 ulps of the exact
    product (computed in float64), at every shape, edge rows and columns and strides included; nothing left unwritten."""
    generator = th.Generator().manual_seed(m * 1000 + n)
    a = th.randn(k, m, generator=generator).t() if transpose_a else th.randn(m, k, generator=generator)
    b = th.randn(n, k, generator=generator).t() if transpose_b else th.randn(k, n, generator=generator)
    result = _product(a, b)
    exact = a.double() @ b.double()
    scale = a.double().abs() @ b.double().abs()  # the error bound of a float32 sum of k terms
    assert result.shape == (m, n) and not result.isnan().any()
    assert ((result.double() - exact).abs() <= k * 2**-23 * scale + 1e-30).all()
    th.testing.assert_close(result, a @ b, rtol=1e-5, atol=1e-5)


@needs_avx512
def test_the_kernel_reads_a_b_of_any_strides():
    """A ``B`` with neither stride 1 (not from the step: copied element by element) gives the same product, bit for
    bit, as its contiguous copy, full panels and edges included."""
    generator = th.Generator().manual_seed(7)
    a, b = th.randn(130, 40, generator=generator), th.randn(80, 140, generator=generator)[::2, ::3]
    assert 1 not in b.stride() and b.shape == (40, 47)
    assert th.equal(_product(a, b), _product(a, b.contiguous()))
    assert th.equal(_product(a[:20], b), _product(a[:20], b.contiguous()))  # under 128 rows


def test_the_operator_is_torch_bmm_in_python_and_exports_as_itself():
    """torch.ops.sb3_tutorial_sac.avx512_bmm runs torch.bmm wherever it runs in Python (the eager step), and export
    records it as itself with torch.bmm's output (its fake implementation), a transposed operand included."""

    class Product(th.nn.Module):
        def forward(self, a: th.Tensor, b: th.Tensor) -> th.Tensor:
            return kernels.avx512_bmm(a, b.transpose(1, 2))

    a, b = th.randn(2, 64, 128), th.randn(2, 96, 128)
    assert th.equal(Product()(a, b), th.bmm(a, b.transpose(1, 2)))
    exported = th.export.export(Product(), (a, b), strict=False)
    (node,) = [node for node in exported.graph.nodes if node.op == "call_function" and "avx512_bmm" in str(node.target)]
    assert node.target is th.ops.sb3_tutorial_sac.avx512_bmm.default
    assert tuple(node.meta["val"].shape) == (2, 64, 96) and node.meta["val"].dtype == th.float32
    assert th.equal(exported.module()(a, b), th.bmm(a, b.transpose(1, 2)))


@pytest.mark.parametrize("case", ["loads", "unavailable", "fails to build"])
def test_compile_step_uses_the_kernel_only_where_it_loads(monkeypatch, tmp_path, case):
    """Where the kernel builds and loads, the package is compiled with the operator's C function (the kernel built
    beside the compile, awaited before the package is loaded); where the machine cannot run it, or it fails to build,
    the step's products stay torch's bmm and the package is another one (its own cache key), compiled again."""
    model = _model("compiled")
    engine = model.update_engine
    calls = []

    def load(folder):
        if case == "fails to build":
            kernels._fail("building the AVX-512 product failed: no", OSError("no"))
        return None

    class Stop(Exception):
        pass

    def compile_and_package(exported, package_path, inductor_configs):
        operators = set()
        for module in exported.graph_module.modules():
            operators |= {str(node.target) for node in module.graph.nodes if node.op == "call_function"}
        calls.append((inductor_configs, any("avx512_bmm" in name for name in operators)))
        if case == "fails to build" and len(calls) == 1:
            open(package_path, "w").close()  # "compiled"; loading it waits for the kernel's build, which fails
            return
        raise Stop

    monkeypatch.setattr(kernels, "load", load)
    monkeypatch.setattr(kernels, "_failure", None)  # this test's failure stays in this test
    if case != "unavailable":  # a machine that can run the kernel (its build is replaced above), whatever this one is
        monkeypatch.setattr(kernels, "cpu_info", lambda: {"flags": "flags : avx512f"})
    if case == "unavailable":
        monkeypatch.setattr(kernels, "unavailable", lambda: "the CPU has no AVX-512F")
    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", compile_and_package)
    monkeypatch.setattr(compiled_module, "cache_folder", lambda: str(tmp_path))  # an empty cache
    assert engine._servable()  # the optimiser states the probe inputs copy
    spec = engine.spec(64)
    with pytest.raises(Stop):
        compile_step(spec, engine._probe_loop_inputs(spec), REWRITES, engine.inductor_configs, looped=True)
    shim = {th.ops.sb3_tutorial_sac.avx512_bmm.default: [kernels.SHIM_DECLARATION]}
    expected = {"loads": [True], "unavailable": [False], "fails to build": [True, False]}[case]
    if case == "fails to build":  # remembered: the next compile does not build (nor compile for) the kernel again
        assert kernels.unavailable() == "building the AVX-512 product failed: no"
    assert [uses for _, uses in calls] == expected
    assert [configs.get("aot_inductor.custom_ops_to_c_shims") == shim for configs, _ in calls] == expected
    assert all(configs["cpp.threads"] == 1 for configs, _ in calls)  # the engine's own options kept


def test_without_avx512_the_kernel_is_not_built_and_says_why(monkeypatch, tmp_path):
    monkeypatch.setattr(kernels, "unavailable", lambda: "the CPU has no AVX-512F")
    with pytest.raises(RuntimeError, match="the CPU has no AVX-512F"):
        kernels.load(str(tmp_path))
    assert list(tmp_path.iterdir()) == []  # nothing compiled
