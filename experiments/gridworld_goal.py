"""GridWorld goal position (docs/theory.rst, "GridWorld goal position"): the committed figures from this folder's TOML.

    python experiments/gridworld_goal.py [--out DIR] [--workers W]

is ``exactbilevel run gridworld-goal --config experiments/gridworld-goal.toml``;
the TOML lists every parameter with its default (a test checks that they agree).
"""

import sys
from pathlib import Path

from exactbilevel.__main__ import main

if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    sys.exit(main(["run", "gridworld-goal", "--config", str(here / "gridworld-goal.toml"), *sys.argv[1:]]))
