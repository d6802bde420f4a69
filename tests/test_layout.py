"""The package's layout: no module imports one that imports it back (deferred imports inside functions and imports for
type checkers count too); the modules below the algorithm never name its class; no module is over 600 lines;
``train()`` is short and near the step's arithmetic; the compiled engine's room (engines/compiled/) is imported only
when asked for. The tests' layout: no test file imports another (shared helpers live in tests/conftest.py and
tests/helpers.py)."""

import ast
import inspect
import pathlib
import subprocess
import sys
import types

import sb3_tutorial_sac

PACKAGE = pathlib.Path(sb3_tutorial_sac.__file__).parent


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import: at module level, inside functions (deferred imports) and for type checkers (``if TYPE_CHECKING:``)."""
    return [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                # "from package import submodule" imports the submodule
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            graph[name] |= {target for target in targets if target in modules and target != name}
    return graph


def test_no_module_imports_one_that_imports_it_back():
    graph = _graph()
    assert "sb3_tutorial_sac.engines.step" in graph and "sb3_tutorial_sac.state" in graph  # the walk found the package
    cycles: list[list[str]] = []
    state: dict[str, str] = {}  # "open" while on the DFS path, "done" after

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not cycles, [" -> ".join(cycle) for cycle in cycles]


def test_every_package_is_installed():
    """pyproject's package list names every package of the tree (an editable install hides one that is missing)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: tomli, tomllib's origin (the tests extra installs it there)
        import tomli as tomllib

    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"]) - {"sb3_tutorial_sac.hyperparams"}
    found = {_module_name(path) for path in PACKAGE.rglob("__init__.py")}
    assert "sb3_tutorial_sac.engines" in found
    assert listed == found


TESTS = pathlib.Path(__file__).resolve().parent


def _named_modules(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import names, relative imports of this folder as ``tests.<name>``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    module = ".".join(part for part in ("tests" if node.level else "", node.module or "") if part)
    return [module] + [f"{module}.{alias.name}" for alias in node.names]


def test_no_test_file_imports_another():
    """As in SB3's tests: what several test files share is a fixture in conftest.py or a function in helpers.py, never
    a name imported from another test file (deferred imports inside functions count too; code in strings does not)."""
    files = {path.stem: path for path in TESTS.glob("*.py")}
    assert {"conftest", "helpers", "test_layout", "test_exactness"} <= set(files)
    found = []
    for path in sorted(files.values()):
        for node in _imports(ast.parse(path.read_text())):
            firsts = {module.removeprefix("tests.").split(".")[0] for module in _named_modules(node)}
            others = sorted(first for first in firsts if first.startswith("test_") and first in files)
            found += [f"{path.name}:{node.lineno} imports {other}" for other in others]
    assert not found, found


COMPILED = "sb3_tutorial_sac.engines.compiled"


def _in_room(name: str) -> bool:
    return name == COMPILED or name.startswith(COMPILED + ".")


def test_only_the_registry_opens_the_compiled_engines_room():
    """Nothing outside engines/compiled/ imports from it at module level; inside functions, only the registry's entry
    (engines/__init__.py: CompiledEngineEntry.build, and CompiledEngine asked for by name) does."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    assert COMPILED in modules and f"{COMPILED}.torch_privates" in modules
    for name, path in modules.items():
        if _in_room(name):
            continue
        tree = ast.parse(path.read_text())
        module_level = {node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))} - {
            node
            for function in ast.walk(tree)
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
            for node in ast.walk(function)
        }
        for node in _imports(tree):
            targets = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.module == "sb3_tutorial_sac.engines":
                targets += [f"sb3_tutorial_sac.engines.{alias.name}" for alias in node.names]
            if any(_in_room(target) for target in targets):
                assert node not in module_level, f"{name} imports the compiled engine's room at module level"
                assert name == "sb3_tutorial_sac.engines", f"{name} opens the compiled engine's room"


def test_importing_the_package_registers_no_custom_operator():
    """``import sb3_tutorial_sac`` (and a model trained with the default engine) imports nothing of the compiled
    engine's room: no ``torch.ops.sb3_tutorial_sac.avx512_bmm``, no ``sb3_tutorial_sac.engines.compiled*`` module."""
    script = """
import sys
import torch
import sb3_tutorial_sac

def room():
    return sorted(name for name in sys.modules if name.startswith("sb3_tutorial_sac.engines.compiled"))

def operator():
    return hasattr(torch.ops.sb3_tutorial_sac, "avx512_bmm")

assert not room() and not operator(), (room(), operator())
from sb3_tutorial_sac import TutorialSAC
model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, learning_starts=10, batch_size=8)
model.learn(20)
assert type(model.update_engine).__name__ == "FastEngine"
assert not room() and not operator(), (room(), operator())
from sb3_tutorial_sac.engines import CompiledEngine  # asked for: the room opens
assert room() and operator()
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


# The algorithm's module and the modules that may name its class (the package's entry points)
ALGORITHM = "sb3_tutorial_sac.tutorial_sac"
ENTRY_POINTS = ("sb3_tutorial_sac", "sb3_tutorial_sac.cli", "sb3_tutorial_sac.zoo", "sb3_tutorial_sac.compare")


def _is_entry_point(name: str) -> bool:
    """The package itself, the CLI and the zoo's and the comparison's modules (subpackages included)."""
    return name in ENTRY_POINTS or name.startswith(tuple(f"{entry}." for entry in ENTRY_POINTS[2:]))


def test_the_rooms_below_the_algorithm_never_import_it():
    """The training state, the guard, the engines, the file modules and interop take the state or the values they need,
    never the model's class (not even for type checkers): only the entry points import the algorithm."""
    graph = _graph()
    importers = {name for name, targets in graph.items() if ALGORITHM in targets}
    below = {name for name in graph if not _is_entry_point(name) and name != ALGORITHM}
    assert {"sb3_tutorial_sac.state", "sb3_tutorial_sac.guard", "sb3_tutorial_sac.persistence"} <= below
    assert not importers & below, sorted(importers & below)


def test_no_module_is_over_600_lines():
    lengths = {_module_name(path): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    assert len(lengths) > 40  # the walk found the package
    assert {name: n for name, n in lengths.items() if n > 600} == {}


def test_train_is_short_and_three_calls_from_the_arithmetic():
    """``TutorialSAC.train`` is under 60 lines, and on the default path at most three calls lie between it and the step
    function that does the arithmetic (counted on the stack when the step function is entered)."""
    from sb3_tutorial_sac import TutorialSAC
    from sb3_tutorial_sac.engines import step as step_module

    source = inspect.getsource(TutorialSAC.train)
    assert len(source.splitlines()) < 60
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, learning_starts=0, batch_size=8, buffer_size=400)
    model.learn(200)  # one episode: the buffer holds a whole minibatch
    step_code = step_module.step_function.__code__.co_consts
    step_code = next(const for const in step_code if isinstance(const, types.CodeType) and const.co_name == "step")
    depths: list[int] = []

    def profile(frame: types.FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code is step_code and not depths:
            calls, caller = 0, frame.f_back
            while caller is not None and caller.f_code is not TutorialSAC.train.__code__:
                calls, caller = calls + 1, caller.f_back
            depths.append(calls if caller is not None else -1)

    sys.setprofile(profile)
    try:
        model.train(gradient_steps=2, batch_size=8)
    finally:
        sys.setprofile(None)
    # train -> engine.run_steps -> (list comprehension) -> step: the step function is the third call, or nearer
    assert depths and 0 < depths[0] <= 3, depths
