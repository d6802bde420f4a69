"""``plot_from_file``'s input (``all_plots``' pickle) unpickled as data: plain containers and NumPy arrays of numbers,
each array's size checked before it is allocated."""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np

from sb3_tutorial_sac.zoo.checks import TRUSTED_HINT, RefusedError

#: What an rl-zoo3 ``all_plots`` file (read by ``plot_from_file``) may name when unpickled: NumPy's arrays and scalars
PLOT_GLOBALS = {
    (module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray") for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.dtypes", "Float64DType"), ("numpy.dtypes", "Int64DType")}


#: The most bytes one array of a plot_from_file pickle may describe, checked before it is allocated (a 254-byte pickle
#: of _reconstruct(ndarray, (10**9,), 'f8') asked for 7.45 GiB)
MAX_PLOT_ARRAY_BYTES = 2**27


def _check_plot_array(shape: Any, dtype: Any) -> None:
    """A :class:`RefusedError` unless an array of ``shape`` and ``dtype`` is numbers of at most ``MAX_PLOT_ARRAY_BYTES``."""
    try:
        dtype = np.dtype(dtype)
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        size = math.prod(int(n) for n in shape) * dtype.itemsize
        plain = not dtype.hasobject and all(isinstance(n, int) and n >= 0 for n in shape)
    except (TypeError, ValueError, OverflowError) as error:
        why = f"the pickle describes an array of shape {str(shape)[:60]}, dtype {str(dtype)[:40]} ({error})"
        raise RefusedError(why) from error
    if not plain or size > MAX_PLOT_ARRAY_BYTES:
        raise RefusedError(
            f"the pickle describes an array of shape {str(shape)[:60]} and dtype {str(dtype)[:40]}: "
            f"{'objects' if not plain else f'{size} bytes'}, beyond the arrays of numbers of at most "
            f"{MAX_PLOT_ARRAY_BYTES} bytes all_plots writes; {TRUSTED_HINT}"
        )


class _PlotArray(np.ndarray):
    """An array being unpickled: its state's shape and dtype checked before NumPy allocates for them."""

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) in (4, 5)):
            raise RefusedError(f"the pickle gives an array the state {str(state)[:80]}; {TRUSTED_HINT}")
        _check_plot_array(state[-4], state[-3])
        super().__setstate__(state)


def _plot_ndarray(shape: Any, dtype: Any = float) -> np.ndarray:
    """``numpy.ndarray(shape, dtype)`` as a pickle may call it: bounded first."""
    _check_plot_array(shape, dtype)
    return np.ndarray(shape, dtype)


def _plot_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """NumPy's ``_reconstruct`` (how a pickled array starts): bounded, of an array whose state is checked."""
    if subtype is not _plot_ndarray:
        raise RefusedError(f"the pickle reconstructs a {str(subtype)[:60]}, not an array; {TRUSTED_HINT}")
    _check_plot_array(shape, dtype)
    return _multiarray()._reconstruct(_PlotArray, shape, dtype)


def _plot_scalar(dtype: Any, *data: Any) -> Any:
    """NumPy's ``scalar`` (a pickled NumPy number): of a dtype of numbers."""
    _check_plot_array((), dtype)
    return _multiarray().scalar(dtype, *data)


def _multiarray() -> Any:
    """NumPy's ``multiarray`` module (``numpy._core`` from NumPy 2, ``numpy.core`` before)."""
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray


_PLOT_CHECKED = {"_reconstruct": _plot_reconstruct, "ndarray": _plot_ndarray, "scalar": _plot_scalar}


def _plain_arrays(value: Any) -> Any:
    """``value`` with every :class:`_PlotArray` in its containers viewed as a plain ``numpy.ndarray`` (in place)."""
    pending, seen = [value], set()
    while pending:
        item = pending.pop()
        if id(item) in seen or not isinstance(item, (dict, list)):
            continue
        seen.add(id(item))
        keys = list(item) if isinstance(item, dict) else range(len(item))
        for key in keys:
            if isinstance(item[key], _PlotArray):
                item[key] = item[key].view(np.ndarray)
            elif isinstance(item[key], tuple):
                item[key] = tuple(entry.view(np.ndarray) if isinstance(entry, _PlotArray) else entry for entry in item[key])
                pending.extend(entry for entry in item[key] if isinstance(entry, (dict, list)))
            else:
                pending.append(item[key])
    return value.view(np.ndarray) if isinstance(value, _PlotArray) else value


class _PlotUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays of numbers only (``PLOT_GLOBALS``), each array's size checked before
    it is allocated (``MAX_PLOT_ARRAY_BYTES``): anything else a pickle names is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in PLOT_GLOBALS:
            return _PLOT_CHECKED.get(name) or super().find_class(module, name)
        raise RefusedError(
            f"the pickle names {module}.{name}, beyond the arrays and containers all_plots writes: unpickling it could "
            f"run code; {TRUSTED_HINT}"
        )

    def load(self) -> Any:
        return _plain_arrays(super().load())


class _PlotPickle:
    """``pickle`` as ``rl_zoo3.plots.plot_from_file`` sees it: ``load`` restricted to :class:`_PlotUnpickler`."""

    def __getattr__(self, name: str) -> Any:
        return getattr(pickle, name)

    @staticmethod
    def load(file: Any) -> Any:
        return _PlotUnpickler(file).load()
