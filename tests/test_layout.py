"""The package's layout: no module imports one that imports it back (deferred imports inside functions count too);
the compiled engine's room (engines/compiled/) is imported only when asked for. The tests' layout: no test file imports
another (shared helpers live in tests/conftest.py and tests/helpers.py)."""

import ast
import pathlib
import subprocess
import sys

import sb3_tutorial_sac

PACKAGE = pathlib.Path(sb3_tutorial_sac.__file__).parent


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import that can run: at module level and inside functions (deferred imports too), not those only for
    type checkers (``if TYPE_CHECKING:``)."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node):
            pending += node.orelse
        else:
            pending += ast.iter_child_nodes(node)
    return found


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
