"""Happy tweets, tabular (docs/theory.rst, "Happy tweets", a choice of this package).

Tweets are sequences of at most ``horizon`` words of a small vocabulary of real
words; the MDP is their prefix tree (:func:`exactbilevel.preferences.prefix_tree`:
state = prefix, action = next word or END).  The "human" is the VADER rule-based
sentiment analyzer (Hutto and Gilbert 2014, the ``vaderSentiment`` package;
compound score in [-1, 1]) as in the minRLHF HappyGPT project: it prefers tweet y
to y' with probability ``sigmoid((vader(y) - vader(y')) / temperature)``.  The
reward model is linear, ``r_x(y) = x^T psi(y)`` with psi the counts of each word
and of each word right after "not" (:func:`~exactbilevel.preferences.negation_features`),
so it cannot represent VADER exactly (boosters such as "very", the normalization of
the compound score).  The upper objective is the Bradley-Terry loss of VADER's
preferences on pairs drawn from the policy, plus ``kappa/2 |x|^2``, exact by
enumeration (:class:`~exactbilevel.preferences.BradleyTerryObjective`); the entropy
regularization is the KL to the uniform reference policy.

Methods: the section 4 actor-critic (bilevel) with decaying and with fixed tau, and
standard RLHF (``method="rlhf"``: the reward model fitted once to the reference
policy, then RL at fixed tau), partial SGD (the reward model refitted on the current
policy's pairs, ignoring how the policy moves with it) and the exact hyper-gradient
descent on Phi_tau (oracle; plotted against k, not samples).

Schedules: alpha, beta and the critics' start are resolved from the problem
(:mod:`exactbilevel.defaults`); lam0 = 1 and zeta0 = 0.02 are set here, because the resolved
defaults misjudge this objective's scale: the occupancy cost of the Bradley-Terry objective,
``grad_pi f / d(s)`` over the 342 prefixes, has a spread of about 4700, dominated by rarely
visited prefixes, which the resolved ``lam0 = F / (tau0 H)`` turns into lam0 = 237 and a zeta
with which x barely moves (happiness -0.05 after 2 x 10^6 steps, against 0.44 with these two
set).

Choices: rho uniform over all states (exploring starts; ``start``), the soft
critics starting at the soft value of the uniform policy under a zero reward
(``critic_init``), the objective linearized every ``linearize_every`` steps.

Outputs (in the results folder): ``runs/<method>/seed<k>.npz`` (+ ``.json``) with
the exact columns ``happiness`` (true happiness ``E_{y ~ pi_phi}[vader(y)]`` of the
learned policy), ``kl`` (``KL(p_{pi_phi} || p_ref)`` over tweets) and ``star`` (of
pi*_tau(x) at the fixed tau: happiness, KL, Phi_tau) (:class:`Metrics`; the general
diagnostics of docs/theory.rst, "What is measured" are off here: the exact penalized policy of this
objective costs seconds per logging point); ``summary.json`` (final values over seeds); figures
``happiness.{png,pdf}`` and ``kl.{png,pdf}`` against environment samples;
``frontier.npz`` and ``tradeoff.{png,pdf}``: the exact happiness-KL trade-off of
RLHF and of the bilevel solution over tau (:func:`frontier`), with the sampled
methods' final points (median, 10-90% over seeds).

Needs the ``vaderSentiment`` package (``pip install "exactbilevel[tweets]"``).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import schedules
from ..actor_critic import ActorCriticConfig, ScheduleWarning
from ..gradients import softmax_policy
from ..preferences import BradleyTerryObjective, negation_features, prefix_tree
from ..problem import BilevelProblem
from ..rewards import LinearReward
from ..runner import run
from ..solvers import solve
from ..trace import read_npz
from .config import dumps, need, option
from .runs import load_runs, run_one, run_tasks, spread, step_sizes, write_atomic

NAME = "happy-tweets"


@dataclass(frozen=True)
class HappyTweets:
    """Configuration of the happy-tweets experiment (defaults: the committed figures)."""

    vocab: tuple = option(("good", "bad", "not", "very"), "the words")
    horizon: int = option(4, "at most this many words per tweet")
    gamma: float = option(0.9, "discount (weights the entropy of later words)")
    start: str = option("uniform", "rho: uniform over all states (exploring starts) or the root")
    negations: tuple = option(("not",), "words that negate the next one (reward-model features)")
    temperature: float = option(0.1, "VADER prefers y to y' with probability sigmoid((v(y) - v(y')) / temperature)")
    kappa: float = option(0.01, "weight of kappa/2 |x|^2")
    x_bound: float = option(10.0, "x stays in [-x_bound, x_bound]^d")
    steps: int = option(2_000_000, "actor-critic steps per run")
    seeds: int = option(10, "seeds per sampled method")
    log_every: int = option(100_000, "steps between logging points")
    linearize_every: int = option(5000, "steps between linearizations of the objective")
    tau0: float = option(2.0, "bilevel: tau_k = tau0 (k+1)^-tau_decay")
    tau_decay: float = option(0.2, "decay exponent of tau")
    tau_fixed: float = option(1.0, "the fixed tau (= the KL weight of RLHF)")
    lam0: float = option(1.0, "lam_k = lam0 (k+1)^lam_growth; set here, not resolved (module docstring)")
    lam_growth: float = option(0.1, "growth exponent of lam")
    alpha0: float = option(0.0, "actors: alpha0 (k+1)^-alpha_decay; 0: resolved from the problem (eb.defaults)")
    alpha_decay: float = option(0.3, "")
    beta0: float = option(0.0, "critics: beta0 (k+1)^-beta_decay; 0: resolved from the problem (eb.defaults)")
    beta_decay: float = option(0.2, "")
    zeta0: float = option(0.02, "upper: zeta0 (k+1)^-zeta_decay; set here, not resolved (module docstring)")
    zeta_decay: float = option(0.6, "")
    actor: str = option("npg", "pg or npg")
    oracle_steps: int = option(100, "outer steps of the exact hyper-gradient descent")
    oracle_zeta: float = option(1.0, "its constant step size")
    frontier_taus: tuple = option((0.25, 4.0), "the exact trade-off figure: tau from ... to ... (7 values)",
                                 length=2)

    def check(self):
        need(self, len(self.vocab) >= 1 and all(isinstance(w, str) and w for w in self.vocab)
             and len(set(self.vocab)) == len(self.vocab), "vocab", "a list of distinct non-empty words")
        need(self, all(isinstance(w, str) for w in self.negations), "negations", "a list of words")
        need(self, 1 <= self.horizon <= 64 and len(self.vocab) ** self.horizon <= 10**5, "horizon",
             "an integer >= 1 with len(vocab)^horizon <= 10^5")
        need(self, 0 < self.gamma < 1, "gamma", "in (0, 1)")
        for key in ("tau0", "tau_fixed", "oracle_zeta", "x_bound"):
            need(self, getattr(self, key) > 0, key, "> 0")
        for key in ("lam0", "alpha0", "beta0", "zeta0"):
            need(self, getattr(self, key) >= 0, key, ">= 0 (0: resolved from the problem)")
        for key in ("temperature", "kappa", "tau_decay", "lam_growth", "alpha_decay", "beta_decay", "zeta_decay"):
            need(self, getattr(self, key) >= 0, key, ">= 0")
        need(self, len(self.frontier_taus) == 2 and 0 < self.frontier_taus[0] <= self.frontier_taus[1],
             "frontier_taus", "[lo, hi] with 0 < lo <= hi")
        for key in ("steps", "seeds", "log_every", "linearize_every", "oracle_steps"):
            need(self, getattr(self, key) >= 1, key, "an integer >= 1")
        need(self, self.actor in ("pg", "npg"), "actor", '"pg" or "npg"')
        need(self, self.start in ("uniform", "root"), "start", '"uniform" or "root"')


_NEEDS = 'the happy-tweets experiment needs vaderSentiment: pip install "exactbilevel[tweets]"'


def missing():
    """What this experiment needs and is not installed (None: nothing)."""
    try:
        import vaderSentiment.vaderSentiment  # noqa: F401
    except ImportError:
        return _NEEDS
    return None


def vader_scores(texts):
    """VADER's compound score of each text (the empty text scores 0)."""
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        raise ImportError(_NEEDS) from None
    analyzer = SentimentIntensityAnalyzer()
    return np.array([analyzer.polarity_scores(t)["compound"] if t else 0.0 for t in texts])


class Metrics:
    """The logged columns of a run, each exact: of the learned policy pi_phi, the true
    happiness ``E_{y ~ pi_phi}[vader(y)]`` and ``KL(p_{pi_phi} || p_ref)``; of x, through
    the soft-optimal policy pi*_tau(x) at the fixed tau, the same two and the upper
    objective ``Phi_tau(x) = f(x, pi*_tau(x))``.  (The general diagnostics of docs/theory.rst, "What is measured"
    are off in this experiment: the exact penalized policy costs too much here.)"""

    def __init__(self, problem, tree, scores, tau):
        self.problem, self.tree, self.scores, self.tau = problem, tree, scores, tau

    def happiness(self, pi):
        """``E_{y ~ pi}[vader(y)]``."""
        return float(self.tree.sequence_probabilities(pi) @ self.scores)

    def optimal(self, x):
        """pi*_tau(x) at the fixed tau."""
        return solve(self.problem.mdp, self.problem.reward.value(x), self.tau, tol=1e-10).pi

    def columns(self):
        """``name -> fn(state)`` for :func:`exactbilevel.run`."""
        def star(st):
            pi = self.optimal(st.x)
            return np.array([self.happiness(pi), self.tree.kl_to_uniform(pi), self.problem.objective.value(st.x, pi)])
        return dict(happiness=lambda st: self.happiness(softmax_policy(st.phi)),
                    kl=lambda st: self.tree.kl_to_uniform(softmax_policy(st.phi)),
                    star=star)


def build(cfg):
    """``(problem, Metrics)``: the bilevel problem (x0 = 0: the reference policy) and the
    happiness and KL columns."""
    tree = prefix_tree(cfg.vocab, cfg.horizon, cfg.gamma, start=cfg.start)
    scores = vader_scores(tree.texts())
    psi = negation_features(tree, cfg.negations)
    obj = BradleyTerryObjective(tree, scores, psi, kappa=cfg.kappa, temperature=cfg.temperature)
    reward = LinearReward(tree.sequence_features(psi))
    problem = BilevelProblem(tree.mdp, reward, obj, np.zeros(psi.shape[1]), bounds=(-cfg.x_bound, cfg.x_bound))
    return problem, Metrics(problem, tree, scores, cfg.tau_fixed)


def setup(cfg):
    """``(problem, metrics)`` of one run."""
    problem, metrics = build(cfg)
    return problem, metrics.columns()


def methods(cfg):
    """``name -> (method, ActorCriticConfig keywords, seeds)`` for every curve of the figures."""
    common = dict(step_sizes(cfg), actor=cfg.actor, log_every=cfg.log_every, steps=cfg.steps,
                  linearize_every=cfg.linearize_every, diagnostics=False)
    decaying = schedules.power(cfg.tau0, cfg.tau_decay)
    # critics start at the resolved default, the soft value gamma tau_0 log A / (1 - gamma) of the
    # uniform policy under a zero reward
    oracle = dict(common, steps=cfg.oracle_steps, log_every=max(1, cfg.oracle_steps // 50), zeta=cfg.oracle_zeta,
                  tau=cfg.tau_fixed)
    fixed = dict(common, tau=cfg.tau_fixed)
    return {
        "bilevel, decaying tau": ("actor_critic", dict(common, tau=decaying), cfg.seeds),
        f"bilevel, tau = {cfg.tau_fixed:g}": ("actor_critic", fixed, cfg.seeds),
        "RLHF": ("rlhf", fixed, cfg.seeds),
        "partial SGD": ("partial_sgd", fixed, cfg.seeds),
        "hyper-gradient (oracle)": ("hypergradient", oracle, 1),
    }


def frontier(cfg, problem, metrics):
    """The exact trade-off of each approach over the KL weight tau (no sampling):
    ``(taus, rlhf, bilevel)`` with rows ``(KL, happiness)`` of pi*_tau(x) for RLHF's x
    (fitted once to the reference policy) and for the x that exact hyper-gradient descent
    on Phi_tau reaches from 0 (``oracle_steps`` steps of ``oracle_zeta``)."""
    taus = np.geomspace(cfg.frontier_taus[0], cfg.frontier_taus[1], 7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScheduleWarning)
        fit = run(problem, ActorCriticConfig(steps=1, tau=1.0, zeta=1.0, diagnostics=False),
                  method="rlhf")["x"][0]
        out = {"RLHF": [], "bilevel": []}
        for t in taus:
            oracle = ActorCriticConfig(steps=cfg.oracle_steps, tau=float(t), alpha=cfg.oracle_zeta,
                                       beta=cfg.oracle_zeta, zeta=cfg.oracle_zeta, diagnostics=False,
                                       log_every=cfg.oracle_steps)
            x_bilevel = run(problem, oracle, method="hypergradient")["x"][-1]
            for name, x in (("RLHF", fit), ("bilevel", x_bilevel)):
                pi = solve(problem.mdp, problem.reward.value(x), float(t), tol=1e-10).pi
                out[name].append((metrics.tree.kl_to_uniform(pi), metrics.happiness(pi)))
    return taus, np.array(out["RLHF"]), np.array(out["bilevel"])


def summarize(runs):
    """Final values over seeds (median and 10-90% quantiles)."""
    rows = []
    for name, traces in runs.items():
        row = dict(method=name, seeds=len(traces), samples=int(traces[0]["samples"][-1]))
        finals = {"happiness": [t["happiness"][-1] for t in traces], "kl": [t["kl"][-1] for t in traces],
                  "happiness_star": [t["star"][-1, 0] for t in traces], "phi_tau": [t["star"][-1, 2] for t in traces]}
        for col, final in finals.items():
            row.update(spread(col, final))
        rows.append(row)
    return rows


def table(rows):
    head = (f"{'method':24s} {'seeds':>5s} {'happiness [q10, q90]':>26s} {'KL':>6s} "
            f"{'happiness of pi*(x)':>19s} {'Phi_tau(x)':>10s} {'samples':>10s}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['method']:24s} {r['seeds']:5d} {r['happiness_median']:7.3f} [{r['happiness_q10']:6.3f}, "
                     f"{r['happiness_q90']:6.3f}] {r['kl_median']:6.3f} {r['happiness_star_median']:19.3f} "
                     f"{r['phi_tau_median']:10.4f} {r['samples']:10d}")
    return "\n".join(lines)


def run_experiment(cfg, out, workers=1, progress=True):
    """Run everything, write the results folder ``out``, return the summary rows."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    problem, metrics = build(cfg)  # fails early without vaderSentiment
    uniform = np.full((problem.mdp.S, problem.mdp.A), 1.0 / problem.mdp.A)
    todo = [(setup, cfg, name, method, kw, seed, out) for name, (method, kw, n) in methods(cfg).items()
            for seed in range(n)]
    run_tasks(run_one, todo, workers, progress, NAME)
    taus, rlhf, bilevel = frontier(cfg, problem, metrics)
    tmp = out / "frontier.tmp.npz"
    np.savez(tmp, tau=taus, rlhf=rlhf, bilevel=bilevel)
    os.replace(tmp, out / "frontier.npz")
    names = list(methods(cfg))
    rows = summarize(load_runs(out, names))
    write_atomic(out / "config.toml", dumps(cfg))
    write_atomic(out / "summary.json", json.dumps(dict(
        experiment=NAME, methods=names, rows=rows, tweets=int(metrics.scores.size),
        happiest=float(metrics.scores.max()), reference_happiness=metrics.happiness(uniform),
        seconds=time.perf_counter() - t0), indent=2))
    figures(out)
    return rows


def figures(out):
    """Draw the figures of a results folder (PNG and PDF)."""
    from .. import plots

    out = Path(out)
    runs = load_runs(out)
    sampled = {name: traces for name, traces in runs.items() if traces[0]["samples"][-1] > 0}
    oracle = [traces[0] for traces in runs.values() if traces[0]["samples"][-1] == 0]
    for col, stem, label in (("happiness", "happiness", r"true happiness $E_{\pi}[\mathrm{VADER}(y)]$"),
                             ("kl", "kl", r"KL$(\pi \,\|\, \pi_{\mathrm{ref}})$ (nats)")):
        fig = plots.curves(sampled, x="samples", y=col, logx=True, xlabel="environment samples", ylabel=label)
        if oracle:  # the exact bilevel solution's policy, for reference
            ax = fig.axes[0]
            level = float(oracle[0][col][-1])
            ax.axhline(level, color="0.35", lw=0.8, ls="--", zorder=1)
            ax.annotate("exact bilevel optimum (oracle)", (0.02, level), xycoords=("axes fraction", "data"),
                        xytext=(0, -3), textcoords="offset points", fontsize="small", color="0.35", va="top")
        plots.save(fig, out / stem)
    front = read_npz(out / "frontier.npz", ("tau", "rlhf", "bilevel"))
    points = {}
    for name, traces in sampled.items():
        if "decaying" in name:  # another problem (tau -> 0): not on these curves
            continue
        kl = np.array([t["kl"][-1] for t in traces])
        happy = np.array([t["happiness"][-1] for t in traces])
        points[f"{name}, sampled"] = (float(np.median(kl)), float(np.median(happy)),
                                      tuple(np.quantile(kl, [0.1, 0.9])), tuple(np.quantile(happy, [0.1, 0.9])))
    lines = {}
    for key, label in (("rlhf", r"RLHF, exact over $\tau$"), ("bilevel", r"bilevel, exact over $\tau$")):
        order = np.argsort(front[key][:, 0])  # along KL: the frontier in this plane
        lines[label] = (front[key][order, 0], front[key][order, 1])
    same = {p: (r"RLHF, exact over $\tau$" if p.startswith("RLHF") else r"bilevel, exact over $\tau$")
            for p in points if p.startswith(("RLHF", "bilevel"))}
    # every method in the color it has in the happiness and KL figures (the order of sampled)
    index = {name: i for i, name in enumerate(sampled)}
    bilevel = next((n for n in sampled if n.startswith("bilevel") and "decaying" not in n), None)
    colors = {f"{n}, sampled": i for n, i in index.items()}
    if "RLHF" in index:
        colors[r"RLHF, exact over $\tau$"] = index["RLHF"]
    if bilevel is not None:
        colors[r"bilevel, exact over $\tau$"] = index[bilevel]
    fig = plots.tradeoff(lines, points, same_color=same, colors=colors,
                         xlabel=r"KL$(\pi \,\|\, \pi_{\mathrm{ref}})$ (nats)",
                         ylabel=r"true happiness $E_{\pi}[\mathrm{VADER}(y)]$")
    plots.save(fig, out / "tradeoff")
