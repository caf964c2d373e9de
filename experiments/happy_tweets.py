"""Happy tweets (docs/theory.rst, "Happy tweets"): the committed figures from this folder's TOML.

    python experiments/happy_tweets.py [--out DIR] [--workers W]

is ``exactbilevel run happy-tweets --config experiments/happy-tweets.toml``;
the TOML lists every parameter with its default (a test checks that they agree).
"""

import sys
from pathlib import Path

from exactbilevel.__main__ import main

if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    sys.exit(main(["run", "happy-tweets", "--config", str(here / "happy-tweets.toml"), *sys.argv[1:]]))
