"""Hypothesis strategies for tabular MDPs, rewards, values, policies, entropy weights,
upper-level points and objectives.

Every strategy draws a few small choices (sizes, a kind, a scale) and an integer
seed, and builds its arrays with numpy from that seed.  This keeps drawing fast
(no element-by-element arrays) and shrinking meaningful: sizes shrink to their
minimum, kinds to the simplest one (listed first), scales to the low end, and
the seed to 0.

>>> from hypothesis import given, settings
>>> from exactbilevel.testing.strategies import mdps, rewards, policies, taus
>>> from hypothesis import strategies as st
>>> @settings(max_examples=10, deadline=None)
... @given(st.data())
... def test_shapes(data):
...     mdp = data.draw(mdps(max_states=8, max_actions=3))
...     r = data.draw(rewards(mdp))
...     pi = data.draw(policies(mdp, min_prob=0.01))
...     tau = data.draw(taus())
...     assert r.shape == pi.shape == (mdp.S, mdp.A)
...     assert 1e-6 <= tau <= 10
>>> test_shapes()

Only this subpackage imports hypothesis; ``import exactbilevel`` does not.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from ..mdp import TabularMDP
from ..objectives import DistributionMatchingObjective, OccupancyObjective
from ..rewards import GaussianGoalReward, LinearReward

__all__ = ["mdps", "banded_mdps", "rewards", "values", "policies", "taus", "seeds", "xs", "objectives"]

#: Seeds for numpy Generators; they shrink to 0.
seeds = st.integers(0, 2**32 - 1)


def _interval(name, value, lo=-math.inf, hi=math.inf):
    """``value`` (a number or a pair) as a pair ``(a, b)`` with lo <= a <= b <= hi."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise InvalidArgument(f"{name} must be a number or a pair (low, high), got {value!r}")
        a, b = float(value[0]), float(value[1])
    else:
        a = b = float(value)
    if not (lo <= a <= b <= hi):
        raise InvalidArgument(f"{name} must satisfy {lo} <= low <= high <= {hi}, got {value!r}")
    return a, b


def _log_uniform(a, b):
    """Floats in [a, b] (0 < a <= b), uniform in log; shrinks towards a."""
    if a == b:
        return st.just(a)
    la, lb = math.log(a), math.log(b)
    return st.floats(la, lb).map(lambda t: min(max(math.exp(t), a), b))


def _uniform(a, b):
    return st.just(a) if a == b else st.floats(a, b)


def _row_weights(rng, rows, k, kind):
    """``(rows, k)`` probability rows, each summing to 1 to rounding."""
    if kind == "dirichlet":
        w = rng.standard_exponential((rows, k))
    else:  # "peaked": Dirichlet(0.2), rows concentrated on a few successors
        w = rng.gamma(0.2, size=(rows, k))
    w[w.sum(axis=1) == 0.0, 0] = 1.0  # all weights underflowed: put the mass on one successor
    return w / w.sum(axis=1, keepdims=True)


def _successor_sets(rng, rows, S, k):
    """``(rows, k)`` sorted distinct next states per row."""
    if k == S:
        return np.broadcast_to(np.arange(S), (rows, S))
    keys = rng.random((rows, S))
    return np.sort(np.argsort(keys, axis=1)[:, :k], axis=1)


@st.composite
def mdps(
    draw,
    min_states=1,
    max_states=30,
    min_actions=1,
    max_actions=6,
    gamma=(0.0, 0.99),
    sparse=None,
    successors=None,
    rho=None,
):
    """Random :class:`~exactbilevel.TabularMDP` instances.

    Parameters
    ----------
    min_states, max_states, min_actions, max_actions : int
        Ranges of S and A (inclusive, >= 1).
    gamma : float or (low, high)
        A fixed discount, or a range in [0, 1) to draw from.
    sparse : bool, optional
        CSR ``(S*A, S)`` storage if True, dense ``(S, A, S)`` if False; drawn when None.
    successors : int, optional
        Number k of possible next states per (s, a) (clamped to S); drawn in
        ``[1, S]`` when None (k = 1 gives deterministic MDPs, k = S full rows).
    rho : {None, "uniform", "dirichlet", "support"}
        Initial distribution: uniform, random with full support, or random on
        a random non-empty subset of states (zeros elsewhere); drawn when None.

    Rows of P are Dirichlet(1) weights (or the more peaked Dirichlet(0.2)) on
    k distinct random successors, built from a drawn seed.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5, deadline=None)
    ... @given(mdps(max_states=4, sparse=True, gamma=0.9))
    ... def check(mdp):
    ...     assert mdp.is_sparse and mdp.gamma == 0.9 and mdp.S <= 4
    >>> check()
    """
    if not 1 <= min_states <= max_states:
        raise InvalidArgument(f"need 1 <= min_states <= max_states, got {min_states}, {max_states}")
    if not 1 <= min_actions <= max_actions:
        raise InvalidArgument(f"need 1 <= min_actions <= max_actions, got {min_actions}, {max_actions}")
    g_lo, g_hi = _interval("gamma", gamma, 0.0, math.nextafter(1.0, 0.0))
    if rho not in (None, "uniform", "dirichlet", "support"):
        raise InvalidArgument(f"rho must be None, 'uniform', 'dirichlet' or 'support', got {rho!r}")

    S = draw(st.integers(min_states, max_states))
    A = draw(st.integers(min_actions, max_actions))
    g = draw(_uniform(g_lo, g_hi))
    is_sparse = draw(st.booleans()) if sparse is None else bool(sparse)
    if successors is None:
        k = draw(st.one_of(st.just(S), st.integers(1, S)))
    else:
        if int(successors) < 1:
            raise InvalidArgument(f"successors must be >= 1, got {successors!r}")
        k = min(int(successors), S)
    kind = draw(st.sampled_from(["dirichlet", "peaked"]))
    rho_kind = draw(st.sampled_from(["uniform", "dirichlet", "support"])) if rho is None else rho
    rng = np.random.default_rng(draw(seeds))

    rows = S * A
    cols = _successor_sets(rng, rows, S, k)
    w = _row_weights(rng, rows, k, kind)
    if is_sparse:
        P = sp.csr_matrix((w.ravel(), cols.ravel(), np.arange(0, rows * k + 1, k)), shape=(rows, S))
    else:
        P = np.zeros((rows, S))
        np.put_along_axis(P, cols, w, axis=1)
        P = P.reshape(S, A, S)

    if rho_kind == "uniform":
        rho_arr = None
    elif rho_kind == "dirichlet":
        rho_arr = rng.standard_exponential(S)
        rho_arr /= rho_arr.sum()
    else:
        mask = rng.random(S) < 0.5
        mask[rng.integers(S)] = True
        rho_arr = np.where(mask, rng.standard_exponential(S), 0.0)
        rho_arr /= rho_arr.sum()
    return TabularMDP(P, g, rho_arr)


@st.composite
def banded_mdps(draw, min_states=160, max_states=400, max_actions=4, gamma=(0.0, 0.99), max_offset=3):
    """Sparse MDPs whose states come in long runs with the same transitions up to
    the shift by s, like grids: the form a sparse MDP keeps as a stencil
    (``TabularMDP.stencil``), which these always have.

    The states are cut into segments at multiples of 64; in each segment every
    action moves from s to ``s + o`` for a few random offsets ``|o| <= max_offset``
    with random probabilities, next states clipped to ``[0, S)`` (so the rows
    of the first and last few states differ).  ``min_states`` must be at least
    160, so that the runs average over ``STENCIL_MIN_RUN`` = 16 states.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=3, deadline=None)
    ... @given(banded_mdps(max_states=200))
    ... def check(mdp):
    ...     assert mdp.is_sparse and mdp.stencil is not None
    >>> check()
    """
    if not 160 <= min_states <= max_states:
        raise InvalidArgument(f"need 160 <= min_states <= max_states, got {min_states}, {max_states}")
    if max_actions < 1 or max_offset < 0:
        raise InvalidArgument(f"need max_actions >= 1 and max_offset >= 0, got {max_actions}, {max_offset}")
    g_lo, g_hi = _interval("gamma", gamma, 0.0, math.nextafter(1.0, 0.0))
    S = draw(st.integers(min_states, max_states))
    A = draw(st.integers(1, max_actions))
    g = draw(_uniform(g_lo, g_hi))
    kind = draw(st.sampled_from(["dirichlet", "peaked"]))
    rng = np.random.default_rng(draw(seeds))
    cuts = np.sort(rng.choice(np.arange(64, S, 64), size=rng.integers(0, (S - 1) // 64 + 1), replace=False))
    segment = np.searchsorted(cuts, np.arange(S), side="right")  # segment of each state
    offsets = np.arange(-max_offset, max_offset + 1)
    rows, cols, vals = [], [], []
    for seg in range(cuts.size + 1):
        states = np.flatnonzero(segment == seg)
        for a in range(A):
            k = rng.integers(1, offsets.size + 1)
            off = np.sort(rng.choice(offsets, size=k, replace=False))
            w = _row_weights(rng, 1, k, kind)[0]
            rows.append(np.repeat(states * A + a, k))
            cols.append(np.clip(states[:, None] + off[None, :], 0, S - 1).ravel())
            vals.append(np.tile(w, states.size))
    P = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(S * A, S))
    return TabularMDP(P, g)


def _shape(mdp):
    if isinstance(mdp, tuple):
        S, A = mdp
    else:
        S, A = mdp.S, mdp.A
    return int(S), int(A)


def _scales(scale):
    """Log-uniform magnitudes from ``scale`` (a number or an interval of numbers > 0)."""
    lo, hi = _interval("scale", scale, 0.0)
    if lo <= 0.0:
        raise InvalidArgument(f"scale must be > 0, got {scale!r}")
    return _log_uniform(lo, hi)


def _reward_table(rng, S, A, c, kind, tie):
    if kind == "uniform":
        r = rng.uniform(-c, c, (S, A))
    elif kind == "normal":
        r = np.clip(rng.normal(0.0, c / 2, (S, A)), -4 * c, 4 * c)
    elif kind == "integer":
        r = rng.integers(-8, 9, (S, A)) * (c / 8)
    elif kind == "sparse":
        r = np.where(rng.random((S, A)) < 0.2, rng.uniform(-c, c, (S, A)), 0.0)
    else:
        r = np.full((S, A), c * rng.choice([-1.0, 1.0]))
    if tie and A > 1:
        states = np.flatnonzero(rng.random(S) < 0.5)
        for s in states:
            src = rng.integers(A)
            dst = rng.random(A) < 0.5
            r[s, dst] = r[s, src]
    return np.ascontiguousarray(r, dtype=np.float64)


@st.composite
def rewards(draw, mdp, d=None, scale=(1e-3, 1e6), ties=None):
    """Rewards for ``mdp`` (a TabularMDP or an ``(S, A)`` pair).

    With ``d=None``: ``(S, A)`` float64 reward tables.  A scale c is drawn
    log-uniformly from ``scale`` (a number fixes it), then entries of size
    about c: uniform in [-c, c], normal, integer multiples of c / 8, sparse
    (mostly zero), or constant.  With ``ties`` (drawn when None) some states
    get exactly tied actions (one action's reward copied to others).

    With an int ``d >= 1``: reward *models* of parameter dimension d (the
    protocol ``value(x)``, ``jacobian(x)``): an :class:`~exactbilevel.LinearReward`
    whose features ``Psi[:, :, i]`` are such tables (dense features), or
    one-hot features (each pair sees one coordinate of x, times c), or a
    :class:`~exactbilevel.GaussianGoalReward` (nonlinear in x; state
    coordinates uniform in [0, 4]^d, sigma log-uniform in [0.5, 2]; its
    values lie in (0, 1], whatever ``scale``).  Draw x with :func:`xs`.

    >>> from hypothesis import given, settings, strategies as st
    >>> @settings(max_examples=5, deadline=None)
    ... @given(rewards((3, 2), scale=1.0))
    ... def check(r):
    ...     assert r.shape == (3, 2) and abs(r).max() <= 8.0
    >>> check()
    >>> @settings(max_examples=5, deadline=None)
    ... @given(rewards((3, 2), d=4))
    ... def check_model(model):
    ...     assert model.jacobian(np.zeros(4)).shape == (3, 2, 4)
    >>> check_model()
    """
    S, A = _shape(mdp)
    c = draw(_scales(scale))
    kinds = ["uniform", "normal", "integer", "sparse", "constant"]
    if d is None:
        kind = draw(st.sampled_from(kinds))
        tie = draw(st.booleans()) if ties is None else bool(ties)
        return _reward_table(np.random.default_rng(draw(seeds)), S, A, c, kind, tie)
    if int(d) < 1:
        raise InvalidArgument(f"d must be None or an int >= 1, got {d!r}")
    d = int(d)
    model = draw(st.sampled_from(["linear", "one-hot", "gaussian"]))
    if model == "gaussian":
        sigma = draw(_log_uniform(0.5, 2.0))
        rng = np.random.default_rng(draw(seeds))
        return GaussianGoalReward(rng.uniform(0.0, 4.0, (S, d)), A, sigma)
    if model == "one-hot":
        rng = np.random.default_rng(draw(seeds))
        Psi = np.zeros((S, A, d))
        np.put_along_axis(Psi, rng.integers(d, size=(S, A, 1)), c, axis=2)
        return LinearReward(Psi)
    kind = draw(st.sampled_from(kinds))
    tie = draw(st.booleans()) if ties is None else bool(ties)
    rng = np.random.default_rng(draw(seeds))
    return LinearReward(np.stack([_reward_table(rng, S, A, c, kind, tie) for _ in range(d)], axis=2))


@st.composite
def xs(draw, d, scale=(1e-2, 10.0)):
    """Upper-level points: ``(d,)`` float64 vectors uniform in [-c, c] (c log-uniform
    from ``scale``), or uniform in [0, 4]^d (where :func:`rewards` puts Gaussian bumps).

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=3, deadline=None)
    ... @given(xs(2))
    ... def check(x):
    ...     assert x.shape == (2,)
    >>> check()
    """
    d = int(d)
    if d < 1:
        raise InvalidArgument(f"d must be >= 1, got {d!r}")
    c = draw(_scales(scale))
    box = draw(st.booleans())
    rng = np.random.default_rng(draw(seeds))
    return rng.uniform(0.0, 4.0, d) if box else rng.uniform(-c, c, d)


@st.composite
def objectives(draw, mdp, d=None, scale=(1e-2, 1e2)):
    """Upper-level objectives for ``mdp``: an :class:`~exactbilevel.OccupancyObjective`
    with a cost table drawn like :func:`rewards` (``scale`` its size), or a
    :class:`~exactbilevel.DistributionMatchingObjective` to a Dirichlet target;
    ``kappa`` 0 or log-uniform in [1e-3, 10]; ``center`` the origin, or (when
    ``d`` is given) a random point of length d.

    >>> from hypothesis import given, settings
    >>> import exactbilevel as eb
    >>> mdp = eb.envs.random_mdp(4, 2)
    >>> @settings(max_examples=3, deadline=None)
    ... @given(objectives(mdp, d=2))
    ... def check(f):
    ...     assert f.grad_pi(np.zeros(2), np.full((4, 2), 0.5)).shape == (4, 2)
    >>> check()
    """
    kind = draw(st.sampled_from(["occupancy", "matching"]))
    kappa = draw(st.one_of(st.just(0.0), _log_uniform(1e-3, 10.0)))
    center = None
    if d is not None:
        center = draw(st.one_of(st.none(), xs(d)))
    if kind == "occupancy":
        return OccupancyObjective(mdp, draw(rewards(mdp, scale=scale)), kappa=kappa, center=center)
    rng = np.random.default_rng(draw(seeds))
    target = rng.standard_exponential(mdp.S)
    return DistributionMatchingObjective(mdp, target / target.sum(), kappa=kappa, center=center)


@st.composite
def values(draw, mdp, scale=(1e-3, 1e8)):
    """``(S,)`` float64 value vectors (uniform in [-c, c], c drawn log-uniformly from ``scale``).

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=3, deadline=None)
    ... @given(values((4, 2), scale=2.0))
    ... def check(V):
    ...     assert V.shape == (4,) and abs(V).max() <= 2.0
    >>> check()
    """
    S, _ = _shape(mdp)
    c = draw(_scales(scale))
    kind = draw(st.sampled_from(["uniform", "constant"]))
    rng = np.random.default_rng(draw(seeds))
    if kind == "constant":
        return np.full(S, rng.uniform(-c, c))
    return rng.uniform(-c, c, S)


@st.composite
def policies(draw, mdp, min_prob=0.0):
    """``(S, A)`` policies (rows on the simplex) for ``mdp`` (a TabularMDP or an ``(S, A)`` pair).

    With ``min_prob = 0`` rows are drawn as uniform, deterministic (one-hot),
    Dirichlet, or Dirichlet on a random support (some zeros).  With
    ``min_prob > 0`` (at most 1/A) every entry is >= min_prob:
    ``pi = min_prob + (1 - A min_prob) w`` for a Dirichlet or uniform row w.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5, deadline=None)
    ... @given(policies((3, 4), min_prob=0.1))
    ... def check(pi):
    ...     assert pi.min() >= 0.1 - 1e-15 and abs(pi.sum(axis=1) - 1).max() < 1e-12
    >>> check()
    """
    S, A = _shape(mdp)
    min_prob = float(min_prob)
    if not 0.0 <= min_prob <= 1.0 / A:
        raise InvalidArgument(f"min_prob must lie in [0, 1/A] = [0, {1.0 / A}], got {min_prob}")
    kinds = ["uniform", "dirichlet"] if min_prob > 0 else ["uniform", "deterministic", "dirichlet", "support"]
    kind = draw(st.sampled_from(kinds))
    rng = np.random.default_rng(draw(seeds))
    if kind == "uniform":
        w = np.full((S, A), 1.0 / A)
    elif kind == "deterministic":
        w = np.zeros((S, A))
        w[np.arange(S), rng.integers(A, size=S)] = 1.0
    else:
        w = rng.standard_exponential((S, A))
        if kind == "support":
            mask = rng.random((S, A)) < 0.5
            mask[np.arange(S), rng.integers(A, size=S)] = True
            w = np.where(mask, w, 0.0)
        w /= w.sum(axis=1, keepdims=True)
    if min_prob > 0:
        w = min_prob + (1.0 - A * min_prob) * w
    return w


def taus(min=1e-6, max=10.0, include_zero=False):  # noqa: A002 - names fixed by the public API
    """Entropy weights, log-uniform in ``[min, max]`` (0 < min <= max); 0 too when ``include_zero``.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5, deadline=None)
    ... @given(taus(1e-3, 1.0, include_zero=True))
    ... def check(tau):
    ...     assert tau == 0.0 or 1e-3 <= tau <= 1.0
    >>> check()
    """
    lo, hi = float(min), float(max)
    if not 0.0 < lo <= hi < math.inf:
        raise InvalidArgument(f"taus needs 0 < min <= max < inf, got min={min!r}, max={max!r}")
    base = _log_uniform(lo, hi)
    return st.one_of(st.just(0.0), base) if include_zero else base


# --------------------------------------------------------------------------- malformed command-line input
#
# Inputs a user of the ``exactbilevel`` command could get wrong: configuration files
# (one key of the wrong type or shape, out of range, unknown, or text that is not TOML),
# sweep grids, and argument lists.  Every one of them is an error that the command line
# must reject before computing anything, with exit status 2 and one line on stderr.


def _toml(value):
    """TOML text of a str, bool, int, float (nan and inf included) or list/tuple of those."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


_WORDS = st.text(alphabet="abcxyz", min_size=0, max_size=5)
_ANY_SCALAR = st.one_of(st.booleans(), st.integers(-10**6, 10**6), _WORDS,
                        st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
                        st.sampled_from([math.nan, math.inf, -math.inf]))
_ANY_VALUE = st.recursive(_ANY_SCALAR, lambda inner: st.lists(inner, max_size=3), max_leaves=6)


def wrong_config_values(schema):
    """TOML values (Python str, bool, int, float, lists) that do not fit ``schema``, the
    ``metadata["schema"]`` of a configuration field (:func:`exactbilevel.experiments.config.option`):
    a value of another type, an array of the wrong length or with a wrong item, a scalar
    where an array is expected, a non-finite number where a finite one is."""
    from ..experiments.config import ConfigError, check_value

    def misfit(value):
        try:
            check_value("key", value, schema)
        except ConfigError:
            return True
        return False

    near = [_ANY_VALUE]
    if isinstance(schema, tuple):  # an array: right length with one wrong item, or wrong length
        _, item, length = schema
        n = length if length is not None else 2
        near.append(st.lists(_ANY_VALUE, min_size=n, max_size=n))
        if length is not None:
            near.append(st.lists(st.integers(0, 5), max_size=length + 2).filter(lambda v: len(v) != length))
    return st.one_of(near).filter(misfit)


#: Values of keys every experiment has, out of their range (type and shape are right).
_OUT_OF_RANGE = (("gamma", 1.0), ("gamma", -0.5), ("seeds", 0), ("steps", -1), ("log_every", 0))
_NOT_TOML = ("steps = [", "= 3", "steps = 'a", "[[", "steps = 1\nsteps = 2", "steps = 1 2", "x = {")


def _experiment_names(experiments):
    from ..experiments import EXPERIMENTS

    names = sorted(EXPERIMENTS) if experiments is None else list(experiments)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if not names or unknown:
        raise InvalidArgument(f"experiments must be names of {sorted(EXPERIMENTS)}, got {experiments!r}")
    return names, EXPERIMENTS


@st.composite
def malformed_configs(draw, experiments=None):
    """``(experiment, toml_text, key)``: a configuration file for ``exactbilevel run EXPERIMENT
    --config FILE`` that must be rejected, with the key the message must name (None for
    text that is not TOML).  One key has a value of the wrong type or shape
    (:func:`wrong_config_values`) or out of range, or a key is unknown, or the text is not TOML.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5, deadline=None)
    ... @given(malformed_configs())
    ... def check(case):
    ...     name, text, key = case
    ...     assert key is None or key in text
    >>> check()
    """
    import dataclasses

    names, table = _experiment_names(experiments)
    name = draw(st.sampled_from(names))
    fields = dataclasses.fields(table[name][1])
    kind = draw(st.sampled_from(["type", "range", "unknown", "syntax"]))
    if kind == "type":
        field = draw(st.sampled_from(fields))
        value = draw(wrong_config_values(field.metadata["schema"]))
        return name, f"{field.name} = {_toml(value)}\n", field.name
    if kind == "range":
        key, value = draw(st.sampled_from(_OUT_OF_RANGE))
        return name, f"{key} = {_toml(value)}\n", key
    if kind == "unknown":
        known = {f.name for f in fields}
        key = draw(st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True).filter(lambda k: k not in known))
        return name, f"{key} = 1\n", key
    return name, draw(st.sampled_from(_NOT_TOML)) + "\n", None


@st.composite
def malformed_grids(draw, experiments=None):
    """``(experiment, toml_text, key)``: a sweep grid for ``exactbilevel sweep EXPERIMENT --grid
    FILE`` that must be rejected: one key's values include one of the wrong type or shape,
    a key's values are not a non-empty array, a key is unknown, or the text is not TOML
    (key None)."""
    import dataclasses

    names, table = _experiment_names(experiments)
    name = draw(st.sampled_from(names))
    fields = dataclasses.fields(table[name][1])
    kind = draw(st.sampled_from(["value", "not-array", "unknown", "syntax"]))
    if kind == "value":
        field = draw(st.sampled_from(fields))
        wrong = draw(wrong_config_values(field.metadata["schema"]))
        values = draw(st.permutations([field.default, wrong]))
        return name, f"{field.name} = {_toml(list(values))}\n", field.name
    if kind == "not-array":
        field = draw(st.sampled_from(fields))
        value = draw(st.one_of(st.just([]), _ANY_SCALAR))
        return name, f"{field.name} = {_toml(value)}\n", field.name
    if kind == "unknown":
        known = {f.name for f in fields}
        key = draw(st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True).filter(lambda k: k not in known))
        return name, f"{key} = [1]\n", key
    return name, draw(st.sampled_from(_NOT_TOML)) + "\n", None


_NOT_INT = st.sampled_from(["x", "1.5", "", "1e3", "--", "two"])
_NOT_FLOAT = st.sampled_from(["x", "", "1,5", "one", "0x"])


@st.composite
def malformed_arguments(draw, missing="/nonexistent-exactbilevel-path/missing"):
    """Argument lists of the ``exactbilevel`` command that must be rejected before anything
    is computed: an option out of range or of the wrong type (``solve --n/--gamma/--tol``,
    ``run --seeds/--steps/--workers``, ``sweep --workers``), an unknown subcommand,
    experiment or option, a missing argument, or a path ``missing`` that does not exist
    given as ``--config``, ``--grid`` or the results folder of ``plot``.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5, deadline=None)
    ... @given(malformed_arguments())
    ... def check(argv):
    ...     assert all(isinstance(a, str) for a in argv)
    >>> check()
    """
    from ..__main__ import MAX_SOLVE_N

    names, _ = _experiment_names(None)
    exp = draw(st.sampled_from(names))
    kind = draw(st.sampled_from(["n", "gamma", "tol", "count", "workers", "name", "command", "option", "path"]))
    if kind == "n":
        n = draw(st.one_of(st.integers(max_value=0).map(str), st.integers(MAX_SOLVE_N + 1, 10**12).map(str), _NOT_INT))
        return ["solve", "--n", n]
    if kind == "gamma":
        bad = st.one_of(st.floats(max_value=0.0, exclude_max=True), st.floats(min_value=1.0), st.just(math.nan))
        return ["solve", "--gamma", draw(st.one_of(bad.map(repr), _NOT_FLOAT))]
    if kind == "tol":
        bad = st.one_of(st.floats(max_value=0.0), st.sampled_from([math.nan, math.inf]))
        return ["solve", "--tol", draw(st.one_of(bad.map(repr), _NOT_FLOAT))]
    if kind == "count":
        option = draw(st.sampled_from(["--seeds", "--steps"]))
        return ["run", exp, option, draw(st.one_of(st.integers(max_value=0).map(str), _NOT_INT))]
    if kind == "workers":
        w = draw(st.one_of(st.integers(max_value=0).map(str), _NOT_INT))
        if draw(st.booleans()):
            return ["run", exp, "--workers", w]
        return ["sweep", exp, "--grid", missing + ".toml", "--workers", w]
    if kind == "name":
        other = draw(st.from_regex(r"[a-z][a-z-]{0,15}", fullmatch=True).filter(lambda s: s not in names))
        return [draw(st.sampled_from(["run", "sweep", "config"])), other]
    if kind == "command":
        return draw(st.sampled_from([[], ["frobnicate"], ["run"], ["sweep", exp], ["plot"], ["config"],
                                     ["solve", "--n"], ["list", "extra"]]))
    if kind == "option":
        known = ("--config", "--seeds", "--steps", "--out", "--workers", "--quiet", "--help", "--grid",
                 "--scheduler", "--n", "--gamma", "--tol")  # argparse takes any prefix of an option
        flag = draw(st.from_regex(r"--[a-z]{1,10}", fullmatch=True).filter(
            lambda f: not any(k.startswith(f) for k in known)))
        return draw(st.sampled_from([["run", exp], ["solve"], ["list"]])) + [flag]
    where = draw(st.sampled_from(["config", "grid", "plot"]))
    if where == "config":
        return ["run", exp, "--config", missing + ".toml"]
    if where == "grid":
        return ["sweep", exp, "--grid", missing + ".toml"]
    return ["plot", missing]

# -- sparse transition matrices in every scipy format, valid and malformed ------------

__all__ += ["SPARSE_FORMATS", "sparse_kernels", "malformed_sparse_kernels"]

#: The scipy.sparse formats :class:`~exactbilevel.TabularMDP` accepts.
SPARSE_FORMATS = ("csr", "csc", "coo", "bsr", "dia", "lil", "dok")


def _kernel_rows(rng, S, A):
    """A dense (S*A, S) transition table with some zeros, every row summing to 1."""
    P = rng.standard_exponential((S * A, S)) * (rng.random((S * A, S)) < 0.6)
    P[np.arange(S * A), rng.integers(S, size=S * A)] += 0.5
    return P / P.sum(axis=1, keepdims=True)


def _set_index_dtype(M, dtype):
    """Store the index arrays of M (where it has them) in ``dtype``, in place."""
    if M.format in ("csr", "csc", "bsr"):
        M.indices, M.indptr = M.indices.astype(dtype), M.indptr.astype(dtype)
    elif M.format == "coo":
        M.row, M.col = M.row.astype(dtype), M.col.astype(dtype)
    elif M.format == "dia":
        M.offsets = M.offsets.astype(dtype)
    return M


def _stored_form(rng, P, fmt, kind, index_dtype, messy):
    """P (dense (S*A, S)) in scipy format ``fmt`` ("matrix" or "array" class).  With
    ``messy``, COO, CSR and CSC store every nonzero as two halves (duplicates) in a
    shuffled order (unsorted indices)."""
    cls = getattr(sp, f"{fmt}_{kind}")
    rows, cols = np.nonzero(P)
    vals = P[rows, cols]
    if messy and fmt in ("coo", "csr", "csc"):
        rows, cols, vals = np.repeat(rows, 2), np.repeat(cols, 2), np.repeat(vals / 2, 2)
        order = rng.permutation(rows.size)
        rows, cols, vals = rows[order], cols[order], vals[order]
        if fmt == "coo":
            M = cls((vals, (rows, cols)), shape=P.shape)
        else:
            major, minor, n = (rows, cols, P.shape[0]) if fmt == "csr" else (cols, rows, P.shape[1])
            order = np.argsort(major, kind="stable")  # grouped by major index, minor order shuffled
            indptr = np.concatenate(([0], np.cumsum(np.bincount(major, minlength=n))))
            M = cls((vals[order], minor[order], indptr), shape=P.shape)
    elif fmt == "bsr":
        M = cls(P, blocksize=(P.shape[1], 1) if P.shape[0] % P.shape[1] == 0 else (1, 1))
    else:
        M = cls(P)
    return _set_index_dtype(M, index_dtype)


@st.composite
def sparse_kernels(draw, max_states=5, max_actions=3, formats=SPARSE_FORMATS):
    """``(M, P)``: a valid transition kernel as a scipy.sparse matrix or array M of shape
    ``(S*A, S)`` in one of ``formats``, with int32 or int64 index arrays, and, for
    COO, CSR and CSC, possibly unsorted indices and duplicate entries (which sum to
    P); P is the same kernel as a dense ``(S, A, S)`` array.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5, deadline=None)
    ... @given(sparse_kernels())
    ... def check(pair):
    ...     M, P = pair
    ...     assert M.shape == (P.shape[0] * P.shape[1], P.shape[0])
    >>> check()
    """
    S = draw(st.integers(1, max_states))
    A = draw(st.integers(1, max_actions))
    fmt = draw(st.sampled_from(formats))
    kind = draw(st.sampled_from(["matrix", "array"]))
    index_dtype = draw(st.sampled_from([np.int32, np.int64]))
    messy = draw(st.booleans())
    rng = np.random.default_rng(draw(seeds))
    P = _kernel_rows(rng, S, A)
    return _stored_form(rng, P, fmt, kind, index_dtype, messy), P.reshape(S, A, S)


def _bad_index(draw, n, dtype):
    """An index outside [0, n) that ``dtype`` can hold."""
    big = int(np.iinfo(dtype).max)
    return draw(st.sampled_from([n, n + 1, n + 1000, big, -1, -n - 1, -big]))


@st.composite
def malformed_sparse_kernels(draw, max_states=5, max_actions=3, formats=SPARSE_FORMATS):
    """``(M, defect)``: a scipy.sparse transition matrix or array of shape ``(S*A, S)``,
    built valid by :func:`sparse_kernels` and then edited in place the way scipy
    allows, so that its structure is malformed: ``defect`` is "index" (a stored
    row or column index outside the shape: scipy's constructors accept such CSC
    and BSR matrices, and its conversions may then read outside the arrays),
    "indptr" (a compressed format's indptr that does not start at 0, decreases,
    or ends beyond the stored entries), or "count" (index and value arrays of
    different lengths).  Every such M must be refused with a ValueError naming P
    (run such tests in a subprocess: a missed defect may crash the process).
    """
    formats = tuple(f for f in formats if f != "dia")  # out-of-range DIA offsets are valid (ignored)
    M, P = draw(sparse_kernels(max_states, max_actions, formats))
    S = P.shape[0]
    fmt = M.format
    if fmt in ("csr", "csc", "bsr"):
        defect = draw(st.sampled_from(["index", "indptr"]))
        if defect == "index":
            n = M.shape[1] // M.blocksize[1] if fmt == "bsr" else (S if fmt == "csr" else M.shape[0])
            k = draw(st.integers(0, M.indices.size - 1))
            M.indices[k] = _bad_index(draw, n, M.indices.dtype)
        else:
            how = draw(st.sampled_from(["start", "decrease", "end"]))
            if how == "start":
                M.indptr[0] = draw(st.sampled_from([1, -1]))
            elif how == "decrease":
                i = draw(st.integers(1, M.indptr.size - 1))
                M.indptr[i] = M.indptr[i - 1] - 1
            else:
                M.indptr[-1] = M.indices.size + draw(st.integers(1, 10**6))
    elif fmt == "coo":
        defect = draw(st.sampled_from(["index", "count"]))
        if defect == "index":
            k = draw(st.integers(0, M.nnz - 1))
            if draw(st.booleans()):
                M.row[k] = _bad_index(draw, M.shape[0], M.row.dtype)
            else:
                M.col[k] = _bad_index(draw, M.shape[1], M.col.dtype)
        else:
            M.row = M.row[:-1]
    elif fmt == "lil":
        defect = "index"
        i = draw(st.integers(0, M.shape[0] - 1))
        M.rows[i][0] = _bad_index(draw, M.shape[1], np.int64)
    else:  # dok: scipy checks its keys on assignment; edit its dict directly
        defect = "index"
        store = getattr(M, "_dict", M)
        i, j = draw(st.sampled_from([(M.shape[0], 0), (0, M.shape[1]), (-1, 0), (0, -1)]))
        dict.__setitem__(store, (i, j), 0.0)
    return M, defect
