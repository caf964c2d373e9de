"""Rates (docs/theory.rst, "Rates and verdicts"): the committed figures from this folder's TOML.

    python experiments/rates.py [--out DIR] [--workers W]

is ``exactbilevel run rates --config experiments/rates.toml``; the TOML lists every
parameter with its default (a test checks that they agree).
"""

import sys
from pathlib import Path

from exactbilevel.__main__ import main

if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    sys.exit(main(["run", "rates", "--config", str(here / "rates.toml"), *sys.argv[1:]]))
