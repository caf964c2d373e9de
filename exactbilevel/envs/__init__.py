"""Environments: random Dirichlet MDPs, the GridWorld of docs/theory.rst, "GridWorld goal position", Gymnasium toy-text tables."""

from .random_mdp import random_mdp
from .gridworld import GridWorld, gridworld
from .gym_tables import GymnasiumMDP, from_gymnasium

__all__ = ["random_mdp", "gridworld", "GridWorld", "from_gymnasium", "GymnasiumMDP"]
