"""The paper's experiments (spec section 6), runnable with ``exactbilevel run NAME``.

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
                          "GridWorld goal position (spec 6.1): landscapes, paths, Phi_0 against samples"),
    happy_tweets.NAME: (happy_tweets, happy_tweets.HappyTweets,
                        "Happy tweets (spec 6.2): bilevel against RLHF with VADER as the human; happiness and KL"),
    rates.NAME: (rates, rates.Rates,
                 "Rates (spec 6.3): fitted slopes with seed intervals beside the theory; penalty and entropy bias"),
    verify.NAME: (verify, verify.Verify,
                  "Verify (spec 5, 6.3): the theorem's rates on long runs, verdicts per claim (`exactbilevel verify`)"),
}

__all__ = ["EXPERIMENTS"]
