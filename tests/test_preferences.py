"""The prefix-tree MDP and the Bradley-Terry objective (docs/theory.rst, "Happy tweets"), each against an
independent computation: walks of the transition table, brute-force sums over sequences and
pairs, the exact evaluator, and finite differences."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import exactbilevel as eb
from exactbilevel.objectives import grad_theta, occupancy_cost
from exactbilevel.preferences import BradleyTerryObjective, negation_features, prefix_tree
from exactbilevel.testing import check_gradient

WORDS = ("good", "bad", "not", "very")


@st.composite
def trees(draw):
    V = draw(st.integers(1, 3))
    H = draw(st.integers(1, 3))
    gamma = draw(st.floats(0.3, 0.95))
    return prefix_tree(WORDS[:V] if V < 3 else ("good", "not", "bad"), H, gamma)


def random_policy(tree, seed):
    return np.random.default_rng(seed).dirichlet(np.ones(tree.mdp.A), size=tree.mdp.S)


def walk(tree, y):
    """(states visited, final state) of the token list y from the root, by the transition table."""
    P = eb.testing.reference.dense_kernel(tree.mdp)
    s, states = 0, [0]
    for t in y:
        s = int(np.argmax(P[s, t]))
        states.append(s)
    return states


def brute_probabilities(tree, pi):
    """p(y) as the product of pi along the walk, times pi(END) unless the walk reached depth H."""
    out = []
    for y in tree.sequences():
        states = walk(tree, y)
        p = math.prod(pi[s, t] for s, t in zip(states[:-1], y))
        out.append(p * (1.0 if len(y) == tree.horizon else pi[states[-1], tree.end]))
    return np.array(out)


@settings(max_examples=25, deadline=None)
@given(trees(), st.integers(0, 2**31 - 1))
def test_sequence_probabilities_equal_the_walks_and_the_occupancy(tree, seed):
    pi = random_policy(tree, seed)
    p = tree.sequence_probabilities(pi)
    np.testing.assert_allclose(p, brute_probabilities(tree, pi), rtol=1e-12, atol=1e-15)
    assert abs(p.sum() - 1.0) < 1e-12
    # the identity of the module docstring, through the exact occupancy
    _, nu = eb.occupancy(tree.mdp, pi)
    g = tree.mdp.gamma
    ends = np.where(tree.depth == tree.horizon, nu[:-1].sum(axis=1), nu[:-1, tree.end])
    np.testing.assert_allclose(p, ends / ((1 - g) * g ** tree.depth), rtol=1e-9, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(trees(), st.integers(0, 2**31 - 1))
def test_the_tree_is_the_tree_of_the_texts(tree, seed):
    texts = tree.texts()
    V, H = len(tree.vocab), tree.horizon
    assert len(texts) == sum(V**h for h in range(H + 1)) == len(set(texts))
    assert tree.mdp.S == len(texts) + 1 and tree.mdp.A == V + 1
    for y, text in zip(tree.sequences(), texts):
        states = walk(tree, y)
        assert texts[states[-1]] == text  # appending a token leads to the prefix with that text
        assert len(y) <= H


@settings(max_examples=15, deadline=None)
@given(trees(), st.integers(0, 2**31 - 1))
def test_the_return_of_the_sequence_features_is_the_expected_reward(tree, seed):
    rng = np.random.default_rng(seed)
    psi = rng.normal(size=(tree.n_sequences, 3))
    x = rng.normal(size=3)
    pi = random_policy(tree, seed + 1)
    r = eb.LinearReward(tree.sequence_features(psi)).value(x)
    V, _ = eb.evaluate(tree.mdp, r, pi)
    p = brute_probabilities(tree, pi)
    assert V[0] == pytest.approx(p @ (psi @ x), rel=1e-9, abs=1e-12)


@settings(max_examples=15, deadline=None)
@given(trees(), st.integers(0, 2**31 - 1))
def test_kl_to_uniform_is_the_sum_over_sequences(tree, seed):
    pi = random_policy(tree, seed)
    p = brute_probabilities(tree, pi)
    q = brute_probabilities(tree, np.full_like(pi, 1.0 / tree.mdp.A))
    assert tree.kl_to_uniform(pi) == pytest.approx(float(np.sum(p * np.log(p / q))), rel=1e-9, abs=1e-12)
    assert tree.kl_to_uniform(np.full_like(pi, 1.0 / tree.mdp.A)) == pytest.approx(0.0, abs=1e-12)


def test_negation_features_count_words_and_negated_words():
    tree = prefix_tree(("good", "not", "bad"), 4)
    psi = negation_features(tree)
    texts = tree.texts()
    row = psi[texts.index("not good bad not")]
    # good negated, bad plain, "not" twice plain
    np.testing.assert_array_equal(row, [0, 2, 1, 1, 0, 0])
    np.testing.assert_array_equal(psi[texts.index("not not")], [0, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(psi[0], 0)


def brute_bt(tree, scores, psi, x, pi, T, kappa):
    """The Bradley-Terry objective by a double loop over sequences."""
    p = brute_probabilities(tree, pi)
    r = psi @ x
    total = 0.0
    for i in range(len(p)):
        for j in range(len(p)):
            diff = scores[i] - scores[j]
            q = 1 / (1 + math.exp(-diff / T)) if T > 0 else 0.5 * (1 + np.sign(diff))
            D = r[i] - r[j]
            total += p[i] * p[j] * (-q * math.log(1 / (1 + math.exp(-D))) - (1 - q) * math.log(1 / (1 + math.exp(D))))
    return total + 0.5 * kappa * float(x @ x)


def bt_case(seed, T=0.2, kappa=0.1, ties=False, start="root"):
    tree = prefix_tree(("good", "not", "bad"), 2, 0.8, start=start)
    rng = np.random.default_rng(seed)
    scores = np.round(rng.uniform(-1, 1, tree.n_sequences), 1 if ties else 8)
    psi = negation_features(tree)
    obj = BradleyTerryObjective(tree, scores, psi, kappa=kappa, temperature=T)
    return tree, obj, scores, psi, rng.normal(size=psi.shape[1]), random_policy(tree, seed + 1)


@pytest.mark.parametrize("T,ties", [(0.2, False), (0.0, True), (3.0, True)])
def test_bradley_terry_value_is_the_double_sum_over_pairs(T, ties):
    tree, obj, scores, psi, x, pi = bt_case(0, T=T, ties=ties)
    assert obj.value(x, pi) == pytest.approx(brute_bt(tree, scores, psi, x, pi, T, 0.1), rel=1e-10)
    # the cache of the last x gives the same numbers in any order of calls
    x2 = x + 0.3
    v1, v2 = obj.value(x2, pi), obj.value(x, pi)
    assert v1 == pytest.approx(brute_bt(tree, scores, psi, x2, pi, T, 0.1), rel=1e-10)
    assert v2 == pytest.approx(brute_bt(tree, scores, psi, x, pi, T, 0.1), rel=1e-10)


@pytest.mark.parametrize("seed,start", [(0, "root"), (1, "uniform"), (2, "root")])
def test_bradley_terry_gradients_match_finite_differences(seed, start):
    tree, obj, _, _, x, pi = bt_case(seed, start=start)
    assert check_gradient(lambda z: obj.value(z, pi), obj.grad_x(x, pi), x)
    theta = np.log(pi)
    g = grad_theta(pi, obj.grad_pi(x, pi))
    assert check_gradient(lambda t: obj.value(x, eb.softmax_policy(t.reshape(pi.shape))), g.ravel(), theta.ravel())


@pytest.mark.parametrize("kind", ["bradley-terry", "bradley-terry-uniform", "matching", "callable"])
def test_the_occupancy_cost_has_the_policy_gradient_of_f(kind):
    """grad_theta f(x, softmax(theta)) = (1 - gamma) grad_theta J_c(theta) for c = occupancy_cost(x, pi):
    the linearization the sampled actor-critic's cost critic learns (policy_gradient computes J_c)."""
    if kind.startswith("bradley-terry"):
        tree, obj, _, _, x, pi = bt_case(3, start="uniform" if kind.endswith("uniform") else "root")
        mdp = tree.mdp
    else:
        mdp = eb.envs.random_mdp(6, 3, gamma=0.8, seed=4)
        obj = eb.DistributionMatchingObjective(mdp, np.full(6, 1 / 6), kappa=0.2)
        x, pi = np.array([0.3, -0.2]), np.random.default_rng(5).dirichlet(np.ones(3), size=6)
        if kind == "callable":  # no occupancy_cost method: derived from grad_pi
            obj = eb.CallableObjective(mdp, obj.value, obj.grad_x, obj.grad_pi)
    theta = np.log(pi)
    c = occupancy_cost(obj, x, pi, mdp)
    g = (1 - mdp.gamma) * eb.policy_gradient(mdp, c, theta, tau=0.0)
    assert check_gradient(lambda t: obj.value(x, eb.softmax_policy(t.reshape(pi.shape))), g.ravel(), theta.ravel())


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(vocab=()), ValueError, "vocab must be a non-empty sequence"),
    (dict(vocab=("a", "a")), ValueError, "vocab must not repeat"),
    (dict(vocab=("a", "")), ValueError, "non-empty strings"),
    (dict(horizon=0), ValueError, "horizon"),
    (dict(gamma=1.0), ValueError, r"gamma must lie in \(0, 1\)"),
    (dict(gamma=0.0), ValueError, r"gamma must lie in \(0, 1\)"),
    (dict(vocab=tuple("abcdefghij"), horizon=6), ValueError, "keep it below 10\\^6"),
    (dict(start="middle"), ValueError, 'start must be "root" or "uniform"'),
])
def test_prefix_tree_rejects_bad_input(kwargs, error, message):
    args = dict(vocab=("a", "b"), horizon=2, gamma=0.9) | kwargs
    with pytest.raises(error, match=message):
        prefix_tree(**args)


def test_bradley_terry_rejects_bad_input():
    tree = prefix_tree(("a", "b"), 2)
    N = tree.n_sequences
    psi, scores = negation_features(tree), np.zeros(N)
    with pytest.raises(TypeError, match="tree must be a PrefixTree"):
        BradleyTerryObjective(tree.mdp, scores, psi)
    with pytest.raises(ValueError, match="scores"):
        BradleyTerryObjective(tree, np.zeros(N + 1), psi)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        BradleyTerryObjective(tree, scores, psi, temperature=-1.0)
    with pytest.raises(ValueError, match="kappa must be >= 0"):
        BradleyTerryObjective(tree, scores, psi, kappa=-1.0)
    obj = BradleyTerryObjective(tree, scores, psi)
    uniform = np.full((tree.mdp.S, tree.mdp.A), 1 / tree.mdp.A)
    with pytest.raises(ValueError, match="x must have length d = 4"):
        obj.value(np.zeros(3), uniform)
    with pytest.raises(ValueError, match="pi"):
        obj.value(np.zeros(4), uniform[:-1])


def test_bradley_terry_gradient_is_finite_where_pi_underflows_to_zero():
    """A near-deterministic policy has entries that are exactly 0 in float64: grad_pi (no
    division by pi) is finite and is the limit of the gradients at nearby positive policies."""
    tree, obj, _, _, x, pi = bt_case(4)
    pi0 = np.where(pi < 0.3, 0.0, pi)
    pi0 /= pi0.sum(axis=1, keepdims=True)
    g0 = obj.grad_pi(x, pi0)
    assert np.all(np.isfinite(g0))
    uniform = np.full_like(pi0, 1 / pi0.shape[1])
    near = obj.grad_pi(x, (1 - 1e-9) * pi0 + 1e-9 * uniform)
    np.testing.assert_allclose(g0, near, rtol=1e-6, atol=1e-8)


def test_the_occupancy_cost_of_a_tree_from_its_root_where_pi_never_goes():
    """From the root, a policy that never takes a token leaves its subtree unvisited (d = 0):
    the cost there is 0 and the policy gradient of <nu, c> still equals grad_pi f."""
    tree, obj, _, _, x, pi = bt_case(6)
    pi = np.array(pi)
    pi[0, 1] = 0.0  # the root never says the second word
    pi[0] /= pi[0].sum()
    c = occupancy_cost(obj, x, pi, tree.mdp)
    assert np.all(np.isfinite(c))
    d, _ = eb.occupancy(tree.mdp, pi)
    assert np.any(d == 0)
    _, Qc = eb.evaluate(tree.mdp, c, pi)
    np.testing.assert_allclose(d[:, None] * Qc, obj.grad_pi(x, pi), rtol=1e-9, atol=1e-12)


def test_cost_of_policy_gradient_refuses_a_gradient_where_pi_never_goes():
    tree, obj, _, _, x, pi = bt_case(6)
    pi = np.array(pi)
    pi[0, 1] = 0.0
    pi[0] /= pi[0].sum()
    g = np.ones((tree.mdp.S, tree.mdp.A))
    with pytest.raises(ValueError, match="which pi never visits"):
        eb.objectives.cost_of_policy_gradient(tree.mdp, pi, g)


@pytest.mark.parametrize("vocab", [None, 5, "ab", b"ab"])
def test_prefix_tree_vocab_must_be_a_sequence_of_strings(vocab):
    with pytest.raises(TypeError, match="vocab must be a sequence of token strings"):
        prefix_tree(vocab, 2)


@pytest.mark.parametrize("V,H", [(2, 18), (2, 19), (2, 63), (2, 64), (3, 12), (3, 13), (1, 10**6 - 1), (1, 10**6),
                                 (1, 10**18), (10, 5), (10, 6)])
def test_prefix_tree_size_limit_is_the_closed_form_count(V, H):
    """The tree has sum_h V^h = (V^(H+1) - 1) / (V - 1) prefixes (H + 1 when V = 1), refused
    above 10^6 with a message naming the limit, never an int64 overflow."""
    count = H + 1 if V == 1 else (V ** (H + 1) - 1) // (V - 1)
    vocab = [f"w{i}" for i in range(V)]
    if count <= 10**6:
        if count <= 2 * 10**5:  # keep the test cheap: build only the small ones
            assert prefix_tree(vocab, H).n_sequences == count
    else:
        with pytest.raises(ValueError, match=r"more than 10\^6 prefixes .*reduce the horizon or the vocabulary"):
            prefix_tree(vocab, H)
