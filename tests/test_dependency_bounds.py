"""pyproject.toml's lower bounds are versions the package can be installed, imported and trained with (issue 32): never
below what Stable-Baselines3 itself requires, nor below what the package's own imports need. (Checked by hand with the
lowest versions, torch 2.8.0, numpy 1.26.4, gymnasium 1.0.0: pyproject.toml's comment at torch.)"""

import importlib.metadata
import pathlib
import re

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = pathlib.Path(__file__).resolve().parent.parent


def lower_bound(requirements: list[str], name: str) -> tuple[int, ...]:
    """The ``>=`` version of ``name`` in ``requirements`` (PEP 508 strings), as a tuple of ints."""
    for requirement in requirements:
        match = re.match(rf"^{re.escape(name)}\s*(\[[^\]]*\])?\s*([^;]*)", requirement.strip(), re.IGNORECASE)
        if match and (bound := re.search(r">=\s*([\d.]+)", match.group(2))):
            return tuple(int(part) for part in bound.group(1).split("."))
    raise AssertionError(f"no lower bound for {name} in {requirements}")


def test_lower_bounds_are_at_least_stable_baselines3s():
    ours = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    sb3 = importlib.metadata.requires("stable-baselines3") or []
    sb3 = [requirement for requirement in sb3 if "extra ==" not in requirement]
    for name in ("torch", "numpy", "gymnasium"):
        assert lower_bound(ours, name) >= lower_bound(sb3, name), name


def test_torch_bound_covers_the_custom_operator_and_the_privates_range():
    ours = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    kernels = (ROOT / "sb3_tutorial_sac" / "engines" / "compiled" / "kernels.py").read_text()
    assert "th.library.custom_op" in kernels  # registered when the compiled engine is asked for: torch 2.4+
    assert lower_bound(ours, "torch") >= (2, 4)
    # the compiled engine's checked range of torch versions starts at the package's lowest torch
    from sb3_tutorial_sac.engines.compiled import torch_privates

    assert lower_bound(ours, "torch") >= torch_privates.TORCH_VERSIONS[0]
