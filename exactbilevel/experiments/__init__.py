"""The paper's experiments (docs/theory.rst, "Experiments"), runnable with ``exactbilevel run NAME``.

Each experiment module has a configuration dataclass (defaults reproduce the
figures committed in ``figures/``; TOML files override them, see
:mod:`exactbilevel.experiments.config`), ``run_experiment(config, out, workers,
progress)`` which writes a results folder, and ``figures(out)`` which draws its
figures from that folder.
"""

from . import gridworld_goal, happy_tweets, rates, verify

#: name -> (module, configuration class, one-line description)
EXPERIMENTS = {
    gridworld_goal.NAME: (gridworld_goal, gridworld_goal.GridworldGoal,
                          "GridWorld goal position (docs/theory.rst, \"GridWorld goal position\"): landscapes, paths, Phi_0 against samples"),
    happy_tweets.NAME: (happy_tweets, happy_tweets.HappyTweets,
                        "Happy tweets (docs/theory.rst, \"Happy tweets\"): bilevel against RLHF with VADER as the human; happiness and KL"),
    rates.NAME: (rates, rates.Rates,
                 "Rates (docs/theory.rst, \"Rates and verdicts\"): fitted slopes with seed intervals beside the theory; penalty and entropy bias"),
    verify.NAME: (verify, verify.Verify,
                  "Verify (docs/theory.rst, \"What is measured\", \"Rates and verdicts\"): the theorem's rates on long runs, verdicts per claim (`exactbilevel verify`)"),
}

__all__ = ["EXPERIMENTS"]
