"""The documentation: the Sphinx site builds with warnings as errors, and every example of the README and the docs runs.

- The build is the command CI and the docs give: ``python -m sphinx -W -b html docs <out>`` (nothing fetched).
- Every ```python block of a page runs, in the page's order, in one namespace, in a temporary folder, with its budgets
  shrunk (``learn(20_000)`` becomes ``learn(200)``, see ``shrink_python``).
- Every ```bash command runs with its budgets shrunk (``shrink_command``), in the process: ``sb3-tutorial-sac`` and
  ``sb3-tutorial-sac-zoo`` are their console scripts' entry points called with the command's arguments, ``python -m
  module`` runs the module as ``__main__``. The comparison's runs are trained in this process, one after the other
  (``sb3_tutorial_sac.compare.backends``' worker processes and Ray tasks are tested in ``tests/test_compare.py``).
  Only the commands of ``NOT_RUN_HERE`` are not run, each for the reason it gives.
- The algorithm page's "Can I use?" table is checked cell by cell by running TutorialSAC on each space.
- ``benchmarks/RESULTS.md`` (included in the site by docs/benchmarks.md) is the record of measurements that take
  hours; its commands are not examples and are not run here. Every difference with its interval that it, the README or
  the algorithm page quotes is one a committed report (``benchmarks/runs/``) prints.
"""

from __future__ import annotations

import contextlib
import pathlib
import re
import runpy
import shlex
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv

from sb3_tutorial_sac import TutorialSAC

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
ALGORITHM_PAGE = DOCS / "modules" / "tutorial_sac.md"

# Commands of the docs that this test does not run, by their first words, and why
NOT_RUN_HERE = {
    "pip install": "installs packages: the README's test command, which CI runs, installs what the tests run in",
    "python -m sphinx": "the build test_docs_build_without_warnings makes (into a temporary folder)",
    "python -m pytest": "the test suite this test is part of",
    "wait": "waits for the commands started with & before it, which run here one after the other",
}

FENCE = re.compile(r"^```(python|bash)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def pages() -> list[pathlib.Path]:
    """The README and every Markdown page of the docs."""
    return [README, *sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)]


def blocks(page: pathlib.Path, language: str) -> list[str]:
    return [code for lang, code in FENCE.findall(page.read_text()) if lang == language]


def page_id(page: pathlib.Path) -> str:
    return str(page.relative_to(ROOT))


# ---------------------------------------------------------------------------------------------------------------
# Budgets: the examples show the real ones, the test runs tiny ones
# ---------------------------------------------------------------------------------------------------------------


def shrink_python(code: str) -> str:
    """A Python block with tiny budgets: every learn() 200 env steps, short evaluations, tiny zoo and compare runs."""
    code = re.sub(r"(\.learn\((?:total_timesteps=)?)[\d_]+", r"\g<1>200", code)
    code = re.sub(r"n_eval_episodes=\d+", "n_eval_episodes=2", code)
    code = re.sub(r"eval_freq=[\d_]+", "eval_freq=200", code)
    code = re.sub(r"budget=[\d_]+,", "budget=200, eval_freq=200, eval_episodes=1,", code)
    code = re.sub(r"seeds=\[[^\]]*\]", "seeds=[0]", code)
    code = re.sub(r'"-n", "\d+"', '"-n", "200"', code)
    return code


def _set_option(words: list[str], option: str, value: str) -> list[str]:
    """``words`` with ``option value`` (replacing the option's value, or appended)."""
    if option in words:
        i = words.index(option)
        return [*words[: i + 1], value, *words[i + 2 :]]
    return [*words, option, value]


def shrink_command(words: list[str]) -> list[str]:
    """A command of the docs with tiny budgets."""
    if words[:2] == ["sb3-tutorial-sac", "compare"]:
        words = _set_option(words, "--seeds", "1")
        words = _set_option(words, "--budget", "200")
        words = _set_option(words, "--eval-freq", "200")
        words = _set_option(words, "--eval-episodes", "1")
        words = _set_option(words, "--jobs", "1")
        return words if "--no-progress" in words else [*words, "--no-progress"]
    if words[:2] == ["sb3-tutorial-sac", "train"]:
        return _set_option(_set_option(words, "--timesteps", "200"), "--eval-episodes", "1")
    if words[:2] == ["sb3-tutorial-sac-zoo", "train"]:
        words = _set_option(words, "-n", "200")
        words = _set_option(words, "--eval-episodes", "1")
        if "--eval-freq" in words:
            words = _set_option(words, "--eval-freq", "200")
        if "--n-trials" in words:
            words = _set_option(words, "--n-trials", "1")
        return words
    if words[:2] in (["sb3-tutorial-sac-zoo", "enjoy"], ["sb3-tutorial-sac-zoo", "record_video"]):
        return _set_option(words, "-n", "200")
    return words


def commands(block: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments dropped, ``a && b`` split."""
    joined = re.sub(r"\s*\\\n\s*", " ", block)
    result = []
    for line in joined.splitlines():
        line = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        result += [part.strip() for part in line.split("&&") if part.strip()]
    return result


# ---------------------------------------------------------------------------------------------------------------
# Running a command in this process
# ---------------------------------------------------------------------------------------------------------------


def _in_process_runs(specs, *args, **kwargs):
    """The comparison's backend, here: each run trained in this process, one after the other."""
    from sb3_tutorial_sac.compare.runs import train_one

    for spec in specs:
        yield spec, train_one(spec, None)


@contextlib.contextmanager
def argv(words: list[str]):
    saved = sys.argv
    sys.argv = list(words)
    try:
        yield
    finally:
        sys.argv = saved


def same_run(words: list[str]) -> tuple:
    """What a command does, for recognising a command that already ran: a comparison by its parsed options (the
    pages write one grid with options in different orders), any other command by its words."""
    if words[:2] == ["sb3-tutorial-sac", "compare"]:
        import argparse

        from sb3_tutorial_sac.compare.cli import add_arguments

        parser = argparse.ArgumentParser()
        add_arguments(parser)
        return ("compare", *sorted((k, str(v)) for k, v in vars(parser.parse_args(words[2:])).items()))
    return tuple(words)


def run_command(command: str, done: set[tuple]) -> None:
    """Run one command of the docs (its budgets shrunk) in this process, unless the same run is in ``done`` (it ran in
    this folder before, for another page); fail if it fails."""
    words = shrink_command(shlex.split(command.rstrip("&").strip()))
    if same_run(words) in done:
        return
    done.add(same_run(words))
    if words[0] == "sb3-tutorial-sac":
        from sb3_tutorial_sac import cli

        code = cli.main(words[1:])
    elif words[0] == "sb3-tutorial-sac-zoo":
        from sb3_tutorial_sac import zoo

        code = zoo.main(words[1:])
    elif words[:2] == ["python", "-m"]:
        with argv([words[2], *words[3:]]):
            runpy.run_module(words[2], run_name="__main__", alter_sys=True)
        code = 0
    else:
        raise AssertionError(f"the docs' command {command!r} is neither run by this test nor in NOT_RUN_HERE")
    assert code in (0, None), f"{command!r} (run as {words}) exited with {code}"


@pytest.fixture(scope="module")
def shell_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, set[tuple]]:
    """One folder for every page's commands, and the runs made in it (a command two pages give runs once; a grid
    two commands share is trained once: the comparison resumes)."""
    return tmp_path_factory.mktemp("doc_commands"), set()


@pytest.fixture()
def quiet_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """No display, no window, comparisons trained in this process."""
    from sb3_tutorial_sac.compare import backends

    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setattr(backends, "_run_local", _in_process_runs)
    monkeypatch.setattr(backends, "_run_ray", _in_process_runs)
    import matplotlib

    matplotlib.use("Agg")


# ---------------------------------------------------------------------------------------------------------------
# The build
# ---------------------------------------------------------------------------------------------------------------


def test_docs_build_without_warnings(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m sphinx -W -b html docs <out>`` (its entry point, in this process): a broken reference, a docstring
    that does not render, a page outside every toctree or an image that is missing fails it."""
    from sphinx.cmd.build import build_main

    out = tmp_path / "html"
    code = build_main(["-W", "-q", "-b", "html", str(DOCS), str(out)])
    assert code == 0, f"sphinx -W failed:\n{capsys.readouterr().err[-5000:]}"
    algorithm = (out / "modules" / "tutorial_sac.html").read_text()
    # the Parameters section is the docstring of TutorialSAC, rendered
    for name in ("critic_learning_rate", "entropy_term", "ent_coef_loss", "sample_with_replacement"):
        assert f"<strong>{name}</strong>" in algorithm
    for section in ("Notes", "Can I use?", "Example", "Results", "How to replicate the results?", "Comments", "Parameters"):
        assert f">{section}<" in algorithm, section
    for figure in ("compare_Pendulum-v1.png", "ablation_Pendulum-v1.png"):
        assert (out / "_images" / figure).is_file()
    api = (out / "api.html").read_text()
    for name in ("export_tutorial_state", "load_tutorial_state", "hyperparams_path", "register", "compare", "NonFiniteError"):
        assert f'<span class="pre">{name}</span>' in api, name
    assert (out / "variant.html").is_file() and (out / "benchmarks.html").is_file()


# ---------------------------------------------------------------------------------------------------------------
# Quoted results: what the README, the algorithm page and RESULTS.md say of the grids, the committed reports print
# ---------------------------------------------------------------------------------------------------------------

NUMBER = r"-?[\d,]+(?:\.\d+)?"
# A difference with its interval, as the reports print it ("+2,747.7 return [1,935.1, 3,607.1]") and as the docs
# quote it (the unit may be left out)
INTERVAL = re.compile(rf"([+-]?[\d,]+\.\d+) (?:[A-Za-z ]+ )?\[({NUMBER}), ({NUMBER})\]")
# Quotes of a report made from other records than the committed ones, each with the reason it is not rebuilt
NOT_FROM_COMMITTED_REPORTS = {
    "-90.0 [-483.0, 406.7]": "HalfCheetah-v5 reported with the first records of seeds 8-9 (git show 9b5fbff: ...)",
}


def _intervals(text: str) -> dict[str, tuple[float, float, float]]:
    def value(word: str) -> float:
        return float(word.replace(",", ""))

    return {m.group(0): (value(m.group(1)), value(m.group(2)), value(m.group(3))) for m in INTERVAL.finditer(text)}


def test_quoted_differences_are_printed_by_a_committed_report() -> None:
    # Issue 31: the README, the algorithm page and RESULTS.md quote only what the reports print. Every difference with
    # its interval quoted in the README, on the algorithm page or in RESULTS.md's comparison section is the difference
    # of a committed report's verdict (benchmarks/runs/**/*.md), of its pair in either order (x - y or y - x)
    printed = set()
    for report in (ROOT / "benchmarks" / "runs").rglob("*.md"):
        for difference, low, high in _intervals(report.read_text()).values():
            printed |= {(difference, low, high), (-difference, -high, -low)}
    assert len(printed) > 200  # every grid's verdicts (Pendulum-v1 and its ablation, LunarLander, HalfCheetah, ...)
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    comparison = results[results.index("## Comparison with SB3's SAC") :]
    quoted = {**_intervals(README.read_text()), **_intervals(ALGORITHM_PAGE.read_text()), **_intervals(comparison)}
    assert len(quoted) > 30
    for text in NOT_FROM_COMMITTED_REPORTS:
        assert text in comparison  # each exception is still quoted (else it goes from the list)
    unprinted = [text for text, figures in quoted.items() if figures not in printed and text not in NOT_FROM_COMMITTED_REPORTS]
    assert not unprinted, "quoted, but printed by no committed report"
    # The check can fail: a quote one decimal off a printed figure is no report's
    difference, low, high = max(printed)
    fake = _intervals(f"{difference + 0.1:,.1f} return [{low:,.1f}, {high:,.1f}]")
    assert len(fake) == 1 and next(iter(fake.values())) not in printed


# ---------------------------------------------------------------------------------------------------------------
# The README
# ---------------------------------------------------------------------------------------------------------------


def test_readme_is_short_and_keeps_ci_commands() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    assert "<!-- main-command -->" in text and "<!-- test-command -->" in text
    # .ci/run's own extraction finds the test command, which installs the docs extra (through tests) and runs pytest
    awk = r"awk '/<!-- test-command -->/{found=1; next} found && /^```bash/{getline; print; exit}' README.md"
    command = subprocess.run(["bash", "-c", awk], capture_output=True, text=True, cwd=ROOT, check=True).stdout.strip()
    assert command == 'pip install torch==2.13.0 && pip install -e ".[tests]" && python -m pytest -q -n 2'
    assert "sb3-tutorial-sac[docs]" in (ROOT / "pyproject.toml").read_text()


@pytest.mark.parametrize("page", pages(), ids=page_id)
def test_relative_links_resolve(page: pathlib.Path) -> None:
    """Every relative link of the README and the docs names a file of the repository (GitHub renders both)."""
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        assert path.exists(), f"{page_id(page)} links to {target}, which does not exist"


# ---------------------------------------------------------------------------------------------------------------
# Every example runs
# ---------------------------------------------------------------------------------------------------------------

PYTHON_PAGES = [p for p in pages() if blocks(p, "python")]
SHELL_PAGES = [p for p in pages() if blocks(p, "bash")]
# The algorithm page's Results: the commands of the benchmark grids (six of them, four environments), the slowest part
SLOW_PAGES = {ALGORITHM_PAGE}


def test_examples_are_found() -> None:
    """The test sees the pages' examples (a change of fence style would otherwise run nothing)."""
    ids = {page_id(p) for p in PYTHON_PAGES}
    assert {"README.md", "docs/modules/tutorial_sac.md", "docs/guide/interop.md", "docs/guide/zoo.md"} <= ids
    assert {"README.md", "docs/guide/zoo.md", "docs/guide/compare.md"} <= {page_id(p) for p in SHELL_PAGES}
    assert shrink_python("model.learn(20_000)\nmodel.learn(total_timesteps=20_000)") == (
        "model.learn(200)\nmodel.learn(total_timesteps=200)"
    )


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=page_id)
def test_python_blocks_run(
    page: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, quiet_runs: None
) -> None:
    """The page's Python blocks, in order, in one namespace (a page's blocks build on each other), budgets shrunk."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # the zoo's Python route sets sys.argv
    namespace: dict = {"__name__": "__main__"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, code in enumerate(blocks(page, "python")):
            exec(compile(shrink_python(code), f"{page_id(page)}[python block {i}]", "exec"), namespace)


@pytest.mark.parametrize(
    "page", [pytest.param(p, marks=pytest.mark.expensive) if p in SLOW_PAGES else p for p in SHELL_PAGES], ids=page_id
)
def test_shell_commands_run(
    page: pathlib.Path, shell_folder: tuple[pathlib.Path, set[tuple]], monkeypatch: pytest.MonkeyPatch, quiet_runs: None
) -> None:
    """The page's commands, in order, budgets shrunk, in one folder shared by the pages."""
    folder, done = shell_folder
    monkeypatch.chdir(folder)
    for block in blocks(page, "bash"):
        for command in commands(block):
            if any(command == prefix or command.startswith(prefix + " ") for prefix in NOT_RUN_HERE):
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                run_command(command, done)


def test_commands_are_split_and_shrunk() -> None:
    block = "# a comment\nsb3-tutorial-sac-zoo train --algo tutorial_sac -n 20000 \\\n  --eval-freq 2000 &\nwait\n"
    assert commands(block) == ["sb3-tutorial-sac-zoo train --algo tutorial_sac -n 20000 --eval-freq 2000 &", "wait"]
    assert shrink_command(shlex.split("sb3-tutorial-sac compare --seeds 10 --jobs 2")) == shlex.split(
        "sb3-tutorial-sac compare --seeds 1 --jobs 1 --budget 200 --eval-freq 200 --eval-episodes 1 --no-progress"
    )
    assert commands("pip install a && sb3-tutorial-sac train") == ["pip install a", "sb3-tutorial-sac train"]


# ---------------------------------------------------------------------------------------------------------------
# "Can I use?": the table is true
# ---------------------------------------------------------------------------------------------------------------

YES, NO = "✔️", "❌"


def can_i_use() -> tuple[dict[str, bool], dict[str, tuple[bool, bool]]]:
    """The algorithm page's "Can I use?": the features (recurrent policies, multi processing) and the spaces table."""
    text = ALGORITHM_PAGE.read_text()
    section = text[text.index("## Can I use?") : text.index("## Example")]
    features = {name: mark == YES for name, mark in re.findall(rf"^- ([\w ]+): ({YES}|{NO})$", section, re.MULTILINE)}
    table = {
        space: (action == YES, observation == YES)
        for space, action, observation in re.findall(rf"^\| (\w+) \| ({YES}|{NO}) \| ({YES}|{NO}) \|$", section, re.MULTILINE)
    }
    return features, table


class SpaceEnv(gym.Env):
    """Random observations of any space, 20-step episodes."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self.t += 1
        return self.observation_space.sample(), -float(np.sum(np.square(action))), False, self.t >= 20, {}


BOX = spaces.Box(-1.0, 1.0, (3,), np.float32)
SPACES = {
    "Box": spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32)),
    "Discrete": spaces.Discrete(3),
    "MultiDiscrete": spaces.MultiDiscrete([2, 3]),
    "MultiBinary": spaces.MultiBinary(3),
    "Dict": spaces.Dict({"position": BOX, "mode": spaces.Discrete(2)}),
}


def learns(observation_space: spaces.Space, action_space: spaces.Space) -> bool:
    """Whether TutorialSAC accepts the spaces and learns 60 steps on them (False: a ValueError naming the space)."""
    policy = "MultiInputPolicy" if isinstance(observation_space, spaces.Dict) else "MlpPolicy"
    try:
        model = TutorialSAC(policy, SpaceEnv(observation_space, action_space), batch_size=8, policy_kwargs=dict(net_arch=[8]))
    except ValueError as error:
        assert "action_space" in str(error)
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.learn(60)
    action, _ = model.predict(observation_space.sample(), deterministic=False)
    assert action_space.contains(action.astype(action_space.dtype))
    return True


def test_can_i_use_spaces_table_is_true() -> None:
    _, table = can_i_use()
    assert set(table) == set(SPACES)
    for name, (action_ok, observation_ok) in table.items():
        assert learns(BOX, SPACES[name]) is action_ok, f"{name} as the action space"
        assert learns(SPACES[name], SPACES["Box"]) is observation_ok, f"{name} as the observation space"


def test_can_i_use_features_are_true(tmp_path: pathlib.Path) -> None:
    features, _ = can_i_use()
    assert set(features) == {"Recurrent policies", "Multi processing"}
    # Recurrent policies: none is offered (sb3-contrib's RecurrentPPO is on-policy; SB3 has no recurrent SAC)
    recurrent = any("Lstm" in alias for alias in TutorialSAC.policy_aliases)
    assert recurrent is features["Recurrent policies"]
    with pytest.raises(ValueError, match="MlpLstmPolicy"):
        TutorialSAC("MlpLstmPolicy", "Pendulum-v1")
    # Multi processing: two envs in subprocesses (forked: the envs need nothing of torch)
    env = make_vec_env("Pendulum-v1", n_envs=2, vec_env_cls=SubprocVecEnv, vec_env_kwargs=dict(start_method="fork"), seed=0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = TutorialSAC("MlpPolicy", env, batch_size=16, policy_kwargs=dict(net_arch=[8]), seed=0).learn(40)
        assert features["Multi processing"] and model.num_timesteps == 40 and model.replay_buffer.size() == 20
    finally:
        env.close()
