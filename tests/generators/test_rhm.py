"""Random hierarchy model: structure, exact counts, laws and seeding."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from generators import rhm

SMALL = dict(vocab_size=8, n_classes=8, n_synonyms=2, tuple_size=2, n_levels=3)


def world_params(draw_max_levels: int = 3):
    """Feasible (v, n, m, s, L) tuples."""
    @st.composite
    def strat(draw):
        s = draw(st.integers(2, 3))
        v = draw(st.integers(2, 6))
        m = draw(st.integers(1, min(v ** (s - 1), 4)))
        n = draw(st.integers(1, min(v**s // m, 6)))
        L = draw(st.integers(1, draw_max_levels))
        return dict(vocab_size=v, n_classes=n, n_synonyms=m, tuple_size=s, n_levels=L)
    return strat()


@settings(max_examples=40, deadline=None)
@given(params=world_params(), seed=st.integers(0, 2**32))
def test_shapes_dtypes_and_rules_used_only_as_defined(params, seed):
    world = rhm.make_world(**params, rng=seed)
    s, L = params["tuple_size"], params["n_levels"]
    smp = rhm.sample(world, 64, rng=seed + 1)
    assert smp.x is smp.levels[-1]
    assert smp.x.dtype == np.uint8
    assert [lv.shape for lv in smp.levels] == [(64, s**l) for l in range(L + 1)]
    assert smp.aux["rules"].shape == (64, (s**L - 1) // (s - 1))
    for l in range(1, L + 1):
        k = s ** (l - 1)
        off = (k - 1) // (s - 1)
        parents = smp.levels[l - 1].astype(int)  # (n, k)
        r = smp.aux["rules"][:, off:off + k].astype(int)
        children = smp.levels[l].reshape(64, k, s)
        np.testing.assert_array_equal(children, world.rules[l - 1][parents, r])


@settings(max_examples=40, deadline=None)
@given(params=world_params(), seed=st.integers(0, 2**32))
def test_rules_are_unambiguous(params, seed):
    world = rhm.make_world(**params, rng=seed)
    for table in world.rules:
        tuples = table.reshape(-1, params["tuple_size"])
        assert len(np.unique(tuples, axis=0)) == len(tuples)
        assert tuples.max() < params["vocab_size"]


@settings(max_examples=30, deadline=None)
@given(params=world_params(), seed=st.integers(0, 2**32), replacement=st.booleans())
def test_decode_inverts_sample_on_every_level(params, seed, replacement):
    world = rhm.make_world(**params, rng=seed)
    n = min(50, rhm.n_distinct_inputs(world))
    smp = rhm.sample(world, n, rng=seed, replacement=replacement)
    dec = rhm.decode(world, smp.x)
    for a, b in zip(dec.levels, smp.levels, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(dec.aux["rules"], smp.aux["rules"])


def test_decode_rejects_sequences_the_rules_cannot_produce():
    world = rhm.make_world(vocab_size=4, n_classes=2, n_synonyms=2, tuple_size=2,
                           n_levels=2, rng=0)
    produced = {tuple(t) for t in world.rules[1].reshape(-1, 2).tolist()}
    bad = next(t for t in itertools.product(range(4), repeat=2) if t not in produced)
    x = rhm.sample(world, 1, rng=1).x.copy()
    x[0, :2] = bad
    with pytest.raises(ValueError, match="produced by no rule"):
        rhm.decode(world, x)
    with pytest.raises(ValueError, match="expected"):
        rhm.decode(world, x[:, :3])
    with pytest.raises(ValueError, match="outside"):
        rhm.decode(world, np.full((1, 4), 9))


def _enumerate_inputs(world) -> set[tuple[int, ...]]:
    """All leaf sequences by brute-force expansion of every (class, rule) choice."""
    seqs = {(c,) for c in range(world.n_classes)}
    for table in world.rules:
        nxt = set()
        for seq in seqs:
            options = [[tuple(t) for t in table[sym]] for sym in seq]
            for combo in itertools.product(*options):
                nxt.add(tuple(itertools.chain.from_iterable(combo)))
        seqs = nxt
    return seqs


@pytest.mark.parametrize("params", [
    dict(vocab_size=3, n_classes=2, n_synonyms=2, tuple_size=2, n_levels=2),
    dict(vocab_size=4, n_classes=3, n_synonyms=3, tuple_size=2, n_levels=2),
    dict(vocab_size=3, n_classes=3, n_synonyms=2, tuple_size=3, n_levels=2),
    dict(vocab_size=2, n_classes=2, n_synonyms=2, tuple_size=2, n_levels=3),
])
def test_p_max_equals_brute_force_count(params):
    world = rhm.make_world(**params, rng=3)
    s, L, m, n = params["tuple_size"], params["n_levels"], params["n_synonyms"], params["n_classes"]
    assert rhm.n_distinct_inputs(world) == len(_enumerate_inputs(world))
    assert rhm.n_distinct_inputs(world) == n * m ** ((s**L - 1) // (s - 1))


def test_p_max_is_exact_beyond_int64():
    world = rhm.make_world(vocab_size=32, n_classes=32, n_synonyms=8, tuple_size=2,
                           n_levels=6, rng=0)
    p_max = rhm.n_distinct_inputs(world)
    assert p_max == 32 * 8**63 and p_max > 2**63
    smp = rhm.sample(world, 2000, rng=1, replacement=False)
    assert len(np.unique(smp.x, axis=0)) == 2000


@pytest.mark.parametrize("exponent", [None, 1.0])
def test_without_replacement_yields_all_inputs_of_a_tiny_world(exponent):
    world = rhm.make_world(vocab_size=3, n_classes=2, n_synonyms=2, tuple_size=2, n_levels=2,
                           rule_exponent=exponent, rng=0)
    p_max = rhm.n_distinct_inputs(world)
    smp = rhm.sample(world, p_max, rng=5, replacement=False)
    assert {tuple(r) for r in smp.x.tolist()} == _enumerate_inputs(world)
    with pytest.raises(ValueError, match="distinct inputs"):
        rhm.sample(world, p_max + 1, rng=5, replacement=False)


@pytest.mark.parametrize("seed", range(5))
def test_without_replacement_rows_distinct_in_streamed_worlds(seed):
    world = rhm.make_world(vocab_size=16, n_classes=8, n_synonyms=4, tuple_size=2,
                           n_levels=4, rng=seed)  # P_max = 8*4**15 > ENUMERATE_LIMIT
    smp = rhm.sample(world, 20000, rng=seed, replacement=False)
    assert len(np.unique(smp.x, axis=0)) == 20000


@pytest.mark.parametrize("exponent", [None, 0.5, 2.0])
def test_rule_frequencies_match_their_law(exponent):
    world = rhm.make_world(vocab_size=16, n_classes=4, n_synonyms=6, tuple_size=2,
                           n_levels=3, rule_exponent=exponent, rng=11)
    rules = rhm.sample(world, 20000, rng=12).aux["rules"]
    counts = np.bincount(rules.ravel(), minlength=6)
    if exponent is None:
        expected = np.full(6, 1 / 6)
    else:
        w = np.arange(1, 7) ** -(1 + exponent)
        expected = w / w.sum()
    np.testing.assert_allclose(world.rule_probs, expected)
    # 140,000 draws, 5 dof: p < 1e-3 only if the law is wrong (fixed seed)
    assert stats.chisquare(counts, expected * counts.sum()).pvalue > 1e-3


def test_root_prior_is_followed():
    prior = (0.5, 0.25, 0.125, 0.125)
    world = rhm.make_world(vocab_size=8, n_classes=4, n_synonyms=2, tuple_size=2, n_levels=2,
                           root_prior=prior, rng=0)
    roots = rhm.sample(world, 8000, rng=1).levels[0].ravel()
    counts = np.bincount(roots, minlength=4)
    assert stats.chisquare(counts, np.asarray(prior) * 8000).pvalue > 1e-3


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32), chunk=st.integers(7, 40000))
def test_chunk_size_does_not_change_the_bytes(seed, chunk):
    world = rhm.make_world(**SMALL, rng=seed)
    whole = rhm.sample(world, 40000, rng=seed)  # crosses two block boundaries
    parts = list(rhm.iter_chunks(world, 40000, rng=seed, chunk_size=chunk))
    assert max(len(p) for p in parts) <= chunk
    np.testing.assert_array_equal(np.concatenate([p.x for p in parts]), whole.x)
    np.testing.assert_array_equal(np.concatenate([p.aux["rules"] for p in parts]),
                                  whole.aux["rules"])


def test_larger_draw_contains_smaller_as_prefix_and_worker_ranges_agree():
    world = rhm.make_world(**SMALL, rng=0)
    big = rhm.sample(world, 50000, rng=9)
    small = rhm.sample(world, 1234, rng=9)
    np.testing.assert_array_equal(big.x[:1234], small.x)
    # two "workers" producing disjoint ranges of the same stream
    ss = np.random.SeedSequence(9)
    a = rhm._sample_range(world, ss, 0, 20000)[0][-1]
    b = rhm._sample_range(world, ss, 20000, 50000)[0][-1]
    np.testing.assert_array_equal(np.concatenate([a, b]), big.x)


def test_without_replacement_is_chunk_independent():
    world = rhm.make_world(vocab_size=16, n_classes=8, n_synonyms=4, tuple_size=2,
                           n_levels=4, rng=1)
    whole = rhm.sample(world, 30000, rng=2, replacement=False).x
    parts = np.concatenate([p.x for p in rhm.iter_chunks(world, 30000, rng=2, chunk_size=4567,
                                                         replacement=False)])
    np.testing.assert_array_equal(parts, whole)


def test_same_seed_same_bytes_and_world_isolated_from_data_seed():
    w1 = rhm.make_world(**SMALL, rng=4)
    w2 = rhm.make_world(**SMALL, rng=4)
    for a, b in zip(w1.rules, w2.rules, strict=True):
        np.testing.assert_array_equal(a, b)
    s1, s2 = rhm.sample(w1, 100, rng=5), rhm.sample(w2, 100, rng=5)
    np.testing.assert_array_equal(s1.x, s2.x)
    assert not np.array_equal(rhm.sample(w1, 100, rng=6).x, s1.x)
    # drawing data (any seed) never touches the world
    before = [t.copy() for t in w1.rules]
    rhm.sample(w1, 1000, rng=123)
    for a, b in zip(before, w1.rules, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_resample_below_keeps_latents_at_and_above_level(level):
    world = rhm.make_world(**SMALL, rng=0)
    smp = rhm.sample(world, 500, rng=1)
    new = rhm.resample_below(world, smp, level, rng=2)
    for l in range(level + 1):
        np.testing.assert_array_equal(new.levels[l], smp.levels[l])
    if level < world.n_levels:
        assert (new.x != smp.x).any()
    dec = rhm.decode(world, new.x)  # still a valid input of the world
    np.testing.assert_array_equal(dec.aux["rules"], new.aux["rules"])


@pytest.mark.parametrize(("params", "match"), [
    (dict(SMALL, n_synonyms=9), r"n_synonyms=9 exceeds vocab_size\*\*\(tuple_size-1\)"),
    (dict(SMALL, vocab_size=4, n_classes=8, n_synonyms=3),
     r"n_classes\*n_synonyms=8\*3=24 exceeds vocab_size\*\*tuple_size"),
    (dict(SMALL, vocab_size=0), "vocab_size=0 must be at least 1"),
    (dict(SMALL, n_levels=0), "n_levels=0 must be at least 1"),
    (dict(SMALL, tuple_size=1), "tuple_size=1 must be at least 2"),
    (dict(SMALL, root_prior=(0.5, 0.5)), "root_prior"),
    (dict(SMALL, root_prior=(0.2,) * 8), "sums to 1.6"),
    (dict(SMALL, rule_exponent=math.inf), "rule_exponent"),
])
def test_infeasible_parameters_raise_clear_errors(params, match):
    with pytest.raises(ValueError, match=match):
        rhm.make_world(**params, rng=0)


def test_bad_types_and_levels_raise():
    with pytest.raises(TypeError, match="integer"):
        rhm.make_world(**dict(SMALL, vocab_size=8.0), rng=0)
    world = rhm.make_world(**SMALL, rng=0)
    with pytest.raises(ValueError, match="n_samples=-1"):
        rhm.sample(world, -1, rng=0)
    with pytest.raises(ValueError, match="level=4"):
        rhm.resample_below(world, rhm.sample(world, 2, rng=0), 4, rng=0)
    with pytest.raises(TypeError, match="rng="):
        rhm.sample(world, 2, rng="seed")
