"""Test helpers for exactbilevel and for code built on it.

Four modules:

:mod:`exactbilevel.testing.strategies`
    Hypothesis strategies drawing tabular MDPs (dense and sparse), rewards,
    values, policies and entropy weights.  Importing it needs ``hypothesis``
    (the ``test`` extra); the rest of exactbilevel never imports hypothesis.

:mod:`exactbilevel.testing.malformed`
    Hypothesis strategies of malformed input (arrays, scalars, distributions,
    policies, calls of every public function with one argument malformed,
    configuration files of the command line) and :func:`check_error_contract`,
    the error contract they test.  Also needs ``hypothesis``.

:mod:`exactbilevel.testing.checks`
    :func:`check_unbiased` (a statistical test that a stochastic estimator's
    mean is an exact value, with a stated false-alarm rate) and
    :func:`check_gradient` (finite differences); both are also importable
    from ``exactbilevel.testing`` directly.

:mod:`exactbilevel.testing.reference`
    Plain-numpy (no Numba) references for every exact computation of the
    package: Q values, the soft Bellman operator, greedy policies, policy
    matrices, policy evaluation, occupancies, value iteration and policy
    iteration.  They are written for clarity, on dense ``(S, A, S)`` kernels,
    and are meant for small problems.

Example
-------
>>> from hypothesis import given, settings
>>> from exactbilevel.testing import strategies as ebst, reference as ref
>>> @settings(max_examples=5, deadline=None)
... @given(ebst.mdps(max_states=5), ebst.taus())
... def check(mdp, tau):
...     P = ref.dense_kernel(mdp)
...     assert P.shape == (mdp.S, mdp.A, mdp.S)
>>> check()

``reference`` and ``checks`` are imported eagerly (it needs only numpy and scipy);
``strategies`` and ``malformed`` are imported on first attribute access, so that
``import exactbilevel.testing`` works without hypothesis installed.
"""

from . import checks, reference
from .checks import GradientReport, UnbiasedReport, check_gradient, check_unbiased

__all__ = ["reference", "strategies", "malformed", "checks", "check_unbiased", "check_gradient", "UnbiasedReport",
           "GradientReport"]


def __getattr__(name):
    if name in ("strategies", "malformed"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
