"""The README's two commands: the main job is wired, and CI runs the test command verbatim."""

import re
from pathlib import Path

import numpy as np

import exactbilevel as eb
from exactbilevel.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands():
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return [line.strip() for line in block.strip().splitlines()]


def test_readme_opens_with_two_commands():
    install_run, install_test = _readme_commands()
    assert install_run == "pip install . && exactbilevel run gridworld-goal"
    assert install_test.startswith('pip install ".[test]" &&')


def test_the_exactbilevel_command_is_the_cli():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'exactbilevel = "exactbilevel.__main__:main"' in text


def test_ci_runs_the_readme_test_command_verbatim():
    _, install_test = _readme_commands()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert install_test in ci_lines


def test_solve_prints_certified_solutions_and_arrows(capsys):
    assert main(["solve", "--n", "4"]) == 0
    out = capsys.readouterr().out
    assert out.count("certified |V - V*| <=") == 2
    # the tau = 0 greedy policy: 4 rows of 4 arrows
    arrows = [line for line in out.splitlines() if re.fullmatch(r"[↑↓←→·#]{4}", line)]
    assert len(arrows) == 8
    # and the printed V* of tau = 0 is the solver's, independent of the printing:
    grid = eb.envs.gridworld(n=4, gamma=0.95)
    r = eb.GaussianGoalReward(grid.coords, grid.mdp.A).value(np.array([3.0, 3.0]))
    V = eb.solve(grid.mdp, r).V
    assert f"{V[0]:.2f}" in out


def test_readme_python_examples_run(tmp_path, monkeypatch):
    """The README's Python blocks run, in order, in one namespace (their asserts included),
    in a temporary folder (they save files)."""
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) >= 3
    namespace = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
