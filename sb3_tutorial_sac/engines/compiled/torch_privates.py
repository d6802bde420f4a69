"""Every private name of torch the compiled engine relies on, in one place, checked before the engine is used.

torch's private modules (``torch._inductor``, ``torch._C._aoti``, ``torch._higher_order_ops``, ``torch._subclasses``)
change between minor versions without notice. The compiled engine reaches them only through this module: the names are
listed in :data:`NAMES`, the versions they were written against in :data:`TORCH_VERSIONS`, and :func:`problem` says,
before the engine is built, which one is missing or whether torch's version is outside that range. Where it says so,
``engine="compiled"`` trains with the fast engine after a warning that quotes it
(:func:`sb3_tutorial_sac.engines.compiled.build`).

What is relied on, and where:

* ``torch._inductor.aoti_compile_and_package`` and ``torch._inductor.aoti_load_package`` (compiling a package, and
  loading one where the loader below cannot be called as written); ``torch._C._aoti.AOTIModelPackageLoader``, called by
  position ``(path, "model", run_single_threaded=True, num_runners=1, device_index=-1)`` (``engine._load_package``);
* ``torch._inductor.codecache.CppBuilder``, swapped for a subclass while a package compiles, so that the wrapper's
  object compiles beside the kernels' (``engine._wrapper_compiled_beside_kernels``): it relies on the builder's
  ``build``, ``get_target_file_path`` and ``_compile_only``, on the wrapper object's name ending in ``.wrapper.o`` and on
  AOTInductor compiling the wrapper before the kernels and linking last; where the class is not what it expects, the
  compile runs as Inductor makes it;
* ``torch._inductor.cpp_builder.get_cpp_compiler`` (the C++ compiler Inductor uses, for the AVX-512 kernel), the C shim
  header ``torch/csrc/inductor/aoti_torch/c/shim.h`` in torch's include folder, ``torch._inductor.config.aot_inductor.
  custom_ops_to_c_shims`` and the shim naming rule (a custom operator ``ns::name`` is called as
  ``aoti_torch_cpu_<name>``: :data:`~sb3_tutorial_sac.engines.compiled.kernels.SHIM_DECLARATION`);
* ``torch._inductor.runtime.cache_dir_utils.default_cache_dir`` (Inductor's cache folder, which
  :func:`~sb3_tutorial_sac.engines.compiled.cache.inductor_folder` names the same way without creating it);
* ``torch._higher_order_ops.while_loop.while_loop_op`` (the loop over a call's steps, traced without TorchDynamo) and
  ``torch._subclasses.fake_tensor.FakeTensorMode`` (the shapes of the step's extra outputs, without arithmetic):
  ``rewrites.loop_function``;
* aten's backward operators ``threshold_backward``, ``tanh_backward`` and ``softplus_backward`` (the written-out
  backward passes, which the compiled engine exports).

The check imports torch's private modules only when the compiled engine is asked for; nothing else in the package
imports this module.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import torch as th

# The torch versions the compiled engine was written against: from the package's lowest torch (pyproject.toml) up to
# and excluding the next minor release after the one its tests run on (2.13); torch's privates may change in any minor
TORCH_VERSIONS = ((2, 8), (2, 14))

# (module, attribute path) of every private name the compiled engine uses (the module docstring says where)
NAMES: tuple[tuple[str, str], ...] = (
    ("torch._inductor", "aoti_compile_and_package"),
    ("torch._inductor", "aoti_load_package"),
    ("torch._C._aoti", "AOTIModelPackageLoader"),
    ("torch._inductor.codecache", "CppBuilder"),
    ("torch._inductor.codecache", "CppBuilder.build"),
    ("torch._inductor.codecache", "CppBuilder.get_target_file_path"),
    ("torch._inductor.cpp_builder", "get_cpp_compiler"),
    ("torch._inductor.config", "aot_inductor.custom_ops_to_c_shims"),
    ("torch._inductor.runtime.cache_dir_utils", "default_cache_dir"),
    ("torch._higher_order_ops.while_loop", "while_loop_op"),
    ("torch._subclasses.fake_tensor", "FakeTensorMode"),
)
# aten operators the exported step calls by name
ATEN_OPERATORS = ("threshold_backward", "tanh_backward", "softplus_backward")
# the C shim header the AVX-512 kernel includes, in torch's include folder
SHIM_HEADER = os.path.join("torch", "csrc", "inductor", "aoti_torch", "c", "shim.h")


def torch_version() -> tuple[int, int]:
    """torch's (major, minor) version, from ``torch.__version__`` (``"2.13.0+cpu"``: ``(2, 13)``)."""
    major, minor = th.__version__.split("+")[0].split(".")[:2]
    return int(major), int("".join(character for character in minor if character.isdigit()) or 0)


def _lookup(module: str, path: str) -> Any:
    """``module``'s attribute ``path`` (dotted), imported now: an ``ImportError`` or ``AttributeError`` if missing."""
    found: Any = importlib.import_module(module)
    for part in path.split("."):
        found = getattr(found, part)
    return found


def problem() -> str | None:
    """Why the compiled engine cannot rely on this torch (None: it can): torch's version outside
    :data:`TORCH_VERSIONS`, or the first of :data:`NAMES`, :data:`ATEN_OPERATORS` or the shim header that is missing."""
    version = torch_version()
    low, high = TORCH_VERSIONS
    if not low <= version < high:
        return (
            f"it relies on torch internals written against torch {low[0]}.{low[1]} to {high[0]}.{high[1] - 1}, and this "
            f"is torch {th.__version__}"
        )
    for module, path in NAMES:
        try:
            _lookup(module, path)
        except (ImportError, AttributeError):
            return f"it relies on {module}.{path}, which torch {th.__version__} does not have"
    for operator in ATEN_OPERATORS:
        if not hasattr(th.ops.aten, operator):
            return f"it relies on torch.ops.aten.{operator}, which torch {th.__version__} does not have"
    if not os.path.exists(os.path.join(os.path.dirname(th.__file__), "include", SHIM_HEADER)):
        return f"it relies on torch's C shim header {SHIM_HEADER}, which this torch {th.__version__} does not ship"
    return None


# ------------------------------------------------------------------------------------------------ the names, read late
# Each is looked up when it is used (a test, or Inductor's own patching, may replace one in between).
def aoti_compile_and_package() -> Any:
    return _lookup("torch._inductor", "aoti_compile_and_package")


def aoti_load_package() -> Any:
    return _lookup("torch._inductor", "aoti_load_package")


def package_loader(path: str) -> Any:
    """``AOTIModelPackageLoader`` for the package at ``path``, run single-threaded with one runner on the CPU (by position,
    as torch 2.8-2.13 take them)."""
    return _lookup("torch._C._aoti", "AOTIModelPackageLoader")(path, "model", True, 1, -1)


def codecache() -> Any:
    """``torch._inductor.codecache``, whose ``CppBuilder`` the engine swaps while a package compiles."""
    return importlib.import_module("torch._inductor.codecache")


def get_cpp_compiler() -> str:
    return _lookup("torch._inductor.cpp_builder", "get_cpp_compiler")()


def while_loop_op() -> Any:
    return _lookup("torch._higher_order_ops.while_loop", "while_loop_op")


def fake_tensor_mode() -> Any:
    return _lookup("torch._subclasses.fake_tensor", "FakeTensorMode")
