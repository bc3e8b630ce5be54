"""PCFG generator: grammars, sampling with trees, exact inference."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from pcfg_brute import enumerate_trees, string_probs
from scipy import stats

from generators import pcfg, rhm
from generators.pcfg import inference as inf
from generators.pcfg.cnf import to_cnf
from generators.pcfg.grammar import GrammarError, from_dict, load, parse_text
from generators.pcfg.presets import PRESETS, dyck, from_rhm

#: a small finite, ambiguous grammar (two parses of "a a a"), with a unary rule
TINY = """
S -> A B [0.5] | B A [0.3] | C [0.2]
A -> 'a' [0.6] | A A [0.4]
B -> 'a' [0.5] | 'b' [0.5]
C -> 'b' 'a' 'b' [1.0]
"""
# A -> A A makes TINY recursive; FINITE has bounded length (max 6)
FINITE = """
S -> X Y [0.5] | Y X [0.3] | Z [0.2]
X -> 'a' [0.6] | 'a' 'b' [0.4]
Y -> 'a' [0.3] | 'b' X [0.5] | X 'b' 'a' [0.2]
Z -> 'b' 'a' 'b' [0.7] | X [0.3]
"""


@pytest.fixture(scope="module")
def english():
    return pcfg.make_world(preset="english")


@pytest.fixture(scope="module")
def finite():
    return parse_text(FINITE, name="finite")


# ------------------------------------------------------------------- grammars

@pytest.mark.parametrize("text, message", [
    ("S -> A [1.0]", "has no rules"),
    ("S -> 'a' [0.5] | 'b' [0.4]", "summing to 0.9"),
    ("S -> 'a' [1.0]\nB -> 'b' [1.0]", "unreachable"),
    ("S -> A [1.0]\nA -> A 'a' [1.0]", "non-productive"),
    ("S -> T [0.5] | 'a' [0.5]\nT -> S [1.0]", "unary cycle"),
    ("S -> S S [0.6] | 'a' [0.4]", "spectral radius 1.2"),
    ("S -> 'a' [-0.5] | 'b' [1.5]", "non-negative"),
    ("S -> 'a' | [0.5]", "epsilon"),
    ("S 'a' [1.0]", "expected `A -> B C"),
    ("S -> 'a' [x]", "not a number"),
])
def test_every_malformed_grammar_gives_its_error(text, message):
    with pytest.raises(GrammarError, match=message):
        parse_text(text)


def test_missing_start_symbol_is_an_error():
    with pytest.raises(GrammarError, match="start symbol 'Q' has no rules"):
        parse_text("S -> 'a' [1.0]", start="Q")


def test_infinite_grammar_is_accepted_only_by_opt_in():
    g = parse_text("S -> S S [0.5] | 'a' [0.5]", allow_infinite=True)
    assert g.spectral_radius == pytest.approx(1.0) and math.isinf(g.expected_length)


def test_text_dict_toml_and_json_forms_give_the_same_grammar(tmp_path, english):
    text = english.to_text()
    again = parse_text(text)
    assert again.nonterminals == english.nonterminals and again.terminals == english.terminals
    np.testing.assert_array_equal(again.rule_rhs, english.rule_rhs)
    np.testing.assert_allclose(again.rule_prob, english.rule_prob, rtol=0, atol=0)
    rules: dict[str, dict[str, float]] = {}
    for r in range(english.n_rules):
        lhs, rhs = english.rule_text(r).split(" -> ")
        rules.setdefault(lhs, {})[rhs.rsplit(" [", 1)[0]] = float(english.rule_prob[r])
    d = from_dict({"start": "S", "rules": rules})
    np.testing.assert_array_equal(d.rule_rhs, english.rule_rhs)
    (tmp_path / "g.json").write_text(json.dumps({"rules": rules}))
    assert load(tmp_path / "g.json").to_text() == english.to_text()
    toml = "[rules]\n" + "\n".join(
        f'{lhs} = {{ {", ".join(f"{json.dumps(k)} = {v!r}" for k, v in alts.items())} }}'
        for lhs, alts in rules.items())
    (tmp_path / "g.toml").write_text(toml)
    assert load(tmp_path / "g.toml").to_text() == english.to_text()


def test_dyck_spectral_radius_and_expected_length_match_closed_forms():
    # M = 2q + p; e = t + M e with t = 2(1 - q) terminals per expansion
    for p, q in [(0.25, 0.25), (0.3, 0.1), (0.5, 0.2)]:
        g = dyck(k=2, p_nest=p, p_concat=q)
        assert g.spectral_radius == pytest.approx(2 * q + p, abs=1e-12)
        assert g.expected_length == pytest.approx(2 * (1 - q) / (1 - 2 * q - p), rel=1e-12)


def test_sampled_mean_length_matches_expected_length(english):
    s = pcfg.sample(english, 16384, rng=0, max_length=100, max_depth=40)
    n = s.aux["lengths"].astype(float)
    # CLT: 16384 samples, 4 standard errors; the limits reject < 1e-3 (rate in meta)
    assert s.meta["rejection_rate"] < 1e-3
    assert abs(n.mean() - english.expected_length) < 4 * n.std() / math.sqrt(len(n))


def test_cnf_conversion_preserves_string_probabilities(english, finite):
    for g, max_len in [(english, 5), (finite, 6), (parse_text(TINY), 5)]:
        c = to_cnf(g)
        assert all((c.rule_len[r] == 2 and c.rule_rhs[r, 0] < c.n_nonterminals)
                   or (c.rule_len[r] == 1 and c.rule_rhs[r, 0] >= c.n_nonterminals)
                   for r in range(c.n_rules))
        a, b = string_probs(g, max_len), string_probs(c, max_len)
        assert set(a) == set(b)
        for y in a:
            assert b[y] == pytest.approx(a[y], rel=1e-12)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_builds_and_samples(preset):
    # a smaller layered grammar keeps this fast (the shipped one is exercised in the benchmark)
    params = {"symbols_per_level": [1, 3, 3, 3]} if preset == "layered" else None
    g = pcfg.make_world(preset=preset, params=params, rng=0)
    limits = {"max_length": 48, "max_depth": 24} if g.is_recursive else {}
    s = pcfg.sample(g, 50, rng=1, **limits)
    assert s.x.shape[0] == 50 and np.all(s.aux["lengths"] >= 1)


def test_layered_grammars_have_one_symbol_level_per_depth():
    shipped = pcfg.make_world(preset="layered")
    assert shipped.layer is not None and not shipped.is_recursive and shipped.max_depth == 6
    assert 200 < shipped.expected_length < 300  # cfg3-like lengths
    g = pcfg.make_world(preset="layered", params={"symbols_per_level": [1, 3, 3, 3]}, rng=1)
    s = pcfg.sample(g, 200, rng=0)
    assert len(s.levels) == 5 and np.all(s.levels[0][s.x >= 0] == 0)
    for d, lv in enumerate(s.levels[:-1]):
        tok = s.x >= 0
        assert np.all(g.layer[lv[tok]] == d)
    np.testing.assert_array_equal(s.levels[-1][tok], s.x[tok] + g.n_nonterminals)


# ------------------------------------------------------------------- sampling

def test_sampled_string_frequencies_match_inside_probabilities(finite):
    s = pcfg.sample(finite, 16384, rng=0)
    probs = string_probs(finite, 6)
    keys = [tuple(r[: n].tolist()) for r, n in zip(s.x, s.aux["lengths"], strict=True)]
    support = sorted(probs)
    counts = np.zeros(len(support))
    index = {y: i for i, y in enumerate(support)}
    for k in keys:
        counts[index[k]] += 1
    exact = np.array([math.exp(inf.log_prob(finite, np.array([y]))[0]) for y in support])
    np.testing.assert_allclose(exact, [probs[y] for y in support], rtol=1e-12)
    # chi-square goodness of fit at a fixed seed; p > 1e-3 fails one seed in a thousand
    assert stats.chisquare(counts, exact * len(keys)).pvalue > 1e-3


def test_tree_arrays_are_consistent(english):
    s = pcfg.sample(english, 120, rng=5, max_length=40)
    g, N = english, english.n_nonterminals
    for i in range(len(s)):
        n, k = int(s.aux["lengths"][i]), int(s.aux["n_nodes"][i])
        spans, parent, rule = s.aux["spans"][i, :k], s.aux["parent"][i, :k], s.aux["rule"][i, :k]
        assert np.all(s.aux["spans"][i, k:] == -1) and np.all(s.x[i, n:] == -1)
        assert parent[0] == -1 and tuple(spans[0]) == (0, n, 0, 0)
        logp = 0.0
        for node in range(k):
            start, end, label, depth = spans[node]
            kids = np.flatnonzero(parent == node)
            if label >= N:
                assert rule[node] == -1 and end == start + 1 and len(kids) == 0
                assert s.x[i, start] == label - N
                continue
            r = rule[node]
            logp += math.log(g.rule_prob[r])
            assert g.rule_lhs[r] == label
            np.testing.assert_array_equal(spans[kids, 2], g.rule_rhs[r, :g.rule_len[r]])
            assert spans[kids[0], 0] == start and spans[kids[-1], 1] == end
            np.testing.assert_array_equal(spans[kids[1:], 0], spans[kids[:-1], 1])
            assert np.all(spans[kids, 3] == depth + 1)
        # the generating tree is one parse: its probability is at most P(x)
        assert logp <= inf.log_prob(g, s.x[i:i + 1, :n])[0] + 1e-9
        for t in range(n):  # levels: ancestors of each token, root first
            anc, node = [], int(np.flatnonzero((spans[:, 0] == t) & (spans[:, 2] >= N))[0])
            while node >= 0:
                anc.append(spans[node, 2])
                node = parent[node]
            col = [int(lv[i, t]) for lv in s.levels]
            assert col[:len(anc)] == anc[::-1] and all(c == -1 for c in col[len(anc):])


@pytest.mark.parametrize("preset_params,max_length", [
    pytest.param(None, 400, marks=pytest.mark.slow),  # the preset: ~8 s on the general path
    ({"symbols_per_level": (1, 2, 3), "rule_lengths": (1, 3)}, None),
    ({"symbols_per_level": (1, 2, 3), "rule_lengths": (1, 3)}, 8)])
def test_layered_fast_sampler_gives_the_same_bytes_as_the_general_sampler(preset_params,
                                                                           max_length):
    # the level-by-level path (generators.pcfg.layered) must reproduce the general
    # breadth-first sampler exactly, rejections (max_length=8 rejects ~60%) included
    g = pcfg.make_world(preset="layered", params=preset_params, rng=3)
    assert g.layer is not None
    fast = pcfg.sample(g, 300, rng=7, max_length=max_length)
    layer = g.layer
    object.__setattr__(g, "layer", None)  # hide the cached layering: general path
    try:
        slow = pcfg.sample(g, 300, rng=7, max_length=max_length)
    finally:
        object.__setattr__(g, "layer", layer)
    assert fast.meta["rejection_rate"] == slow.meta["rejection_rate"]
    for a, b in [(fast.x, slow.x), *zip(fast.levels, slow.levels, strict=True),
                 *((fast.aux[k], slow.aux[k]) for k in fast.aux)]:
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("params,max_length", [(None, 300), (None, None),
                                               ({"symbols_per_level": (1, 2, 3),
                                                 "rule_lengths": (1, 3)}, 8)])
def test_layered_kernels_equal_their_uncompiled_python(params, max_length, monkeypatch):
    # the compiled kernels of generators.pcfg.layered against kernel.py_func (plain
    # Python, what runs without numba): same trees, same bytes, rejections included
    from generators.pcfg import layered as pl
    g = pcfg.make_world(preset="layered", params=params, rng=3)
    w = pcfg._widths(g, max_length, None)
    keys = pcfg._rule_keys(g)

    def draw() -> tuple[dict[str, np.ndarray], int]:
        rd = pl.LayeredRound(g, np.random.default_rng(5), 40, keys, max_length)
        out = pcfg._alloc(g, w, rd.n)
        rd.write(out, 0, 0, rd.n)
        return out, rd.n

    fast, n_fast = draw()
    for name in ("_grow_level", "_down", "_tokens", "_up", "_climb", "_layout_trees"):
        monkeypatch.setattr(pl, name, getattr(pl, name).py_func)
    slow, n_slow = draw()
    assert n_fast == n_slow and (max_length is None or 0 < n_fast < 40)
    for k in fast:
        assert fast[k].dtype == slow[k].dtype
        np.testing.assert_array_equal(fast[k], slow[k])


def test_chunks_concatenate_to_the_draw_and_larger_draws_extend_smaller(english):
    whole = pcfg.sample(english, 700, rng=9, max_length=30)
    parts = list(pcfg.iter_chunks(english, 700, rng=9, chunk_size=256, max_length=30))
    assert [len(p) for p in parts] == [256, 256, 188]
    np.testing.assert_array_equal(np.concatenate([p.x for p in parts]), whole.x)
    np.testing.assert_array_equal(np.concatenate([p.aux["spans"] for p in parts]),
                                  whole.aux["spans"])
    small = pcfg.sample(english, 100, rng=9, max_length=30)
    np.testing.assert_array_equal(small.levels[3], whole.levels[3][:100])


def test_near_critical_dyck_samples_without_recursion_error_and_reports_rejections():
    g = dyck(k=2, p_nest=0.39, p_concat=0.3)  # spectral radius 0.99
    s = pcfg.sample(g, 2000, rng=0, max_length=128)
    n = s.aux["lengths"]
    assert np.all(n <= 128) and s.meta["rejection_rate"] > 0.01
    depth = np.cumsum(np.where(s.x < 0, 0, np.where(s.x % 2 == 0, 1, -1)), axis=1)
    assert np.all(depth >= 0) and np.all(depth[np.arange(len(n)), n - 1] == 0)


def test_max_depth_rejects_deep_trees(english):
    s = pcfg.sample(english, 500, rng=2, max_length=60, max_depth=6)
    assert s.aux["spans"][..., 3].max() <= 6 and len(s.levels) == 7
    assert s.meta["rejection_rate"] > 0


def test_impossible_limits_and_unbounded_recursive_grammars_raise(english):
    with pytest.raises(ValueError, match="recursive"):
        pcfg.sample(english, 10, rng=0)
    with pytest.raises(ValueError, match="shortest string"):
        pcfg.sample(pcfg.make_world(preset="layered"), 10, rng=0, max_length=20)
    with pytest.raises(ValueError, match="unknown"):
        pcfg.make_world(preset="nope")


# ------------------------------------------------------------------ inference

def test_inside_probabilities_sum_to_one_over_all_strings_of_a_finite_grammar(finite):
    assert finite.max_length == 6 and not finite.is_recursive
    total = 0.0
    for n in range(1, 7):
        x = np.array(list(itertools.product(range(finite.n_terminals), repeat=n)))
        total += np.exp(inf.log_prob(finite, x)).sum()
    assert total == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("which", ["english", "tiny", "random_cnf"])
def test_counts_viterbi_and_span_posteriors_equal_brute_force(which, english):
    g = {"english": english, "tiny": parse_text(TINY),
         "random_cnf": pcfg.make_world(preset="random_cnf", rng=3,
                                       params={"n_nonterminals": 4, "n_terminals": 2,
                                               "n_binary": 4, "n_lexical": 2})}[which]
    trees = enumerate_trees(g, 4 if which == "random_cnf" else 5)
    strings = sorted(trees, key=lambda y: (-len(trees[y]), y))[:6]
    for y in strings:
        x = np.array([y])
        ts = trees[y]
        z = math.fsum(p for p, _ in ts)
        assert inf.parse_counts(g, x) == [len(ts)]
        assert inf.log_prob(g, x)[0] == pytest.approx(math.log(z), rel=1e-12)
        best, nodes = inf.viterbi(g, x)
        p_best = max(p for p, _ in ts)
        assert best[0] == pytest.approx(math.log(p_best), rel=1e-12)
        ties = {nd for p, nd in ts if p == pytest.approx(p_best, rel=1e-12)}
        assert tuple(map(tuple, nodes[0].tolist())) in ties
        post = inf.span_posteriors(g, x)[0]
        brute = np.zeros_like(post)
        for p, nd in ts:
            for a, b, sym in nd:
                brute[a, b, sym] += p / z
        np.testing.assert_allclose(post, brute, atol=1e-12)
        assert post[0, len(y), 0] == pytest.approx(1.0)  # the root spans everything


def test_linear_and_log_scaled_span_posteriors_agree(english):
    # two implementations of the same formula (per-token scaled linear charts vs per-span
    # log scales): equal to rounding; a long Dyck string still has root posterior 1
    s = pcfg.sample(english, 64, rng=3, max_length=12)
    n = int(np.bincount(s.aux["lengths"]).argmax())
    x = s.x[s.aux["lengths"] == n][:, :n].astype(int)
    post, ok = inf._span_posteriors_linear(english, x)
    assert ok.all()
    np.testing.assert_allclose(post, inf._span_posteriors_scaled(english, x), atol=1e-12)
    lin, sc = inf._inside(english, x)
    np.testing.assert_allclose(inf.log_prob(english, x), np.log(lin[:, 0, n, 0]) + sc[:, 0, n],
                               rtol=1e-12)
    d = pcfg.make_world(preset="dyck")
    long_x = np.tile([0, 1], 60)[None]  # "()" * 60
    post = inf.span_posteriors(d, long_x)
    assert np.isfinite(post).all()
    assert post[0, 0, 120, 0] == pytest.approx(1.0, abs=1e-12)


def test_sequences_outside_the_linear_range_fall_back_one_by_one():
    # P("a a a a c") = 1e-280 / 2: its linear chart could underflow in a product, so that
    # sequence alone is redone with per-span log scales; "b b b b c" stays linear
    g = parse_text("S -> 'a' S [1e-70] | 'b' S [0.5] | 'c' [0.5]", allow_infinite=True)
    x = np.array([[0, 0, 0, 0, 2], [1, 1, 1, 1, 2]])
    _, ok = inf._span_posteriors_linear(g, x)
    assert ok.tolist() == [False, True]
    post = inf.span_posteriors(g, x)
    np.testing.assert_allclose(post, inf._span_posteriors_scaled(g, x), atol=1e-12)
    np.testing.assert_allclose(post[:, np.arange(5), 5, 0], 1.0, atol=1e-12)  # S spans [i, 5)
    np.testing.assert_allclose(inf.log_prob(g, x), [math.log(1e-280 * 0.5), math.log(0.5 ** 5)],
                               rtol=1e-12)


@pytest.mark.parametrize("which", ["tiny", "random_cnf"])
def test_chart_kernel_equals_its_uncompiled_python(which, monkeypatch):
    # the compiled inside-outside kernel against kernel.py_func (what runs without numba)
    from generators.pcfg import chart as pcfg_chart
    g = parse_text(TINY) if which == "tiny" else pcfg.make_world(preset="random_cnf", rng=0)
    s = pcfg.sample(g, 2000, rng=1, max_length=8, max_depth=12)
    x = s.x[s.aux["lengths"] == 6][:11, :6].astype(int)  # a tile of 8 and one of 3
    assert len(x) == 11 and np.any(inf.tables(g).unary) == (which == "tiny")
    fast = inf._span_posteriors_linear(g, x)[0], inf.log_prob(g, x)
    with monkeypatch.context() as mp:  # one sequence per tile: the same sums, same bits
        mp.setattr(inf, "CHART_BYTES", 1)
        np.testing.assert_array_equal(inf._span_posteriors_linear(g, x)[0], fast[0])
    for name in ("_closure", "_extremes"):
        monkeypatch.setattr(pcfg_chart, name, getattr(pcfg_chart, name).py_func)
    monkeypatch.setattr(pcfg_chart, "inside_outside", pcfg_chart.inside_outside.py_func)
    slow = inf._span_posteriors_linear(g, x)[0], inf.log_prob(g, x)
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])


def test_without_numba_the_numpy_paths_give_the_same_samples_and_posteriors(english,
                                                                           monkeypatch):
    # without numba, layered grammars sample on the general numpy path (same bytes) and
    # inference uses the log-scaled numpy charts (equal to rounding)
    from generators import _jit
    g = pcfg.make_world(preset="layered", params={"symbols_per_level": (1, 2, 3)}, rng=3)
    s = pcfg.sample(english, 200, rng=3, max_length=10)
    x = s.x[s.aux["lengths"] == 5][:, :5].astype(int)
    compiled = pcfg.sample(g, 100, rng=7, max_length=12), inf.span_posteriors(english, x)
    lp = inf.log_prob(english, x)
    monkeypatch.setattr(_jit, "HAVE_NUMBA", False)
    plain = pcfg.sample(g, 100, rng=7, max_length=12), inf.span_posteriors(english, x)
    assert compiled[0].meta["rejection_rate"] == plain[0].meta["rejection_rate"] > 0
    for a, b in [(compiled[0].x, plain[0].x),
                 *zip(compiled[0].levels, plain[0].levels, strict=True),
                 *((compiled[0].aux[k], plain[0].aux[k]) for k in compiled[0].aux)]:
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(plain[1], compiled[1], atol=1e-12)
    np.testing.assert_allclose(inf.log_prob(english, x), lp, rtol=1e-12)


def test_parse_counts_are_exact_beyond_int64():
    # S -> S S | 'a': Catalan numbers of parses; C_40 > 2**63 ... use length 41
    g = parse_text("S -> S S [0.3] | 'a' [0.7]")
    n = 41
    assert inf.parse_counts(g, np.zeros((1, n), int)) == [math.comb(2 * 40, 40) // 41]


def test_batched_inference_equals_one_by_one(english):
    s = pcfg.sample(english, 400, rng=4, max_length=8)
    x = s.x[s.aux["lengths"] == 6][:, :6].astype(int)
    batch = inf.span_posteriors(english, x)
    for b in range(len(x)):
        np.testing.assert_allclose(inf.span_posteriors(english, x[b:b + 1])[0], batch[b],
                                   atol=1e-12)


def test_next_token_distributions_sum_to_one_and_chain_to_the_string_probability(english):
    s = pcfg.sample(english, 20, rng=6, max_length=12)
    for i in range(5):
        n = int(s.aux["lengths"][i])
        x = s.x[i:i + 1, :n].astype(int)
        d = inf.next_token_distributions(english, x)[0]
        np.testing.assert_allclose(d.sum(axis=1), 1.0, atol=1e-12)
        chain = sum(math.log(d[t, x[0, t]]) for t in range(n)) + math.log(d[n, -1])
        assert chain == pytest.approx(inf.log_prob(english, x)[0], rel=1e-10)


def test_next_token_distributions_equal_brute_force_on_a_finite_grammar(finite):
    probs = string_probs(finite, 6)
    for y in [(0, 1, 0), (1, 0, 1), (0,)]:
        d = inf.next_token_distributions(finite, np.array([y]))[0]
        for t in range(len(y) + 1):
            num = np.zeros(finite.n_terminals + 1)
            for s_, p in probs.items():
                if s_[:t] == y[:t]:
                    num[s_[t] if len(s_) > t else -1] += p
            np.testing.assert_allclose(d[t], num / num.sum(), atol=1e-12)


@pytest.mark.parametrize("params", [None, {"symbols_per_level": (1, 2, 3), "rule_lengths": (1, 3),
                                             "rng": 3}])
def test_layered_chain_forward_pass_equals_the_prefix_probability_chart(params):
    # two exact algorithms (chain automaton vs Jelinek-Lafferty chart): equal to rounding;
    # the second grammar has unary rules (rule length 1)
    g = pcfg.make_world(preset="layered") if params is None else pcfg.make_world(
        preset="layered", params={k: v for k, v in params.items() if k != "rng"},
        rng=params["rng"])
    assert g.layer is not None
    s = pcfg.sample(g, 8, rng=5)
    n = min(int(s.aux["lengths"].min()), 30)
    x = s.x[:3, :n].astype(int)
    fast = inf.next_token_distributions(g, x)
    np.testing.assert_allclose(fast, inf._next_token_chart(g, x), atol=1e-12)
    if params is None:
        return  # strings of the preset are ~250 long: a cubic inside pass would be slow
    full = s.x[:1, :int(s.aux["lengths"][0])].astype(int)
    d = inf.next_token_distributions(g, full)[0]
    chain = sum(math.log(d[t, full[0, t]]) for t in range(full.shape[1])) + math.log(d[-1, -1])
    assert chain == pytest.approx(inf.log_prob(g, full)[0], rel=1e-10)


def test_next_token_distribution_matches_sampled_frequencies(finite):
    s = pcfg.sample(finite, 16384, rng=11)
    first = s.x[:, 0]
    d = inf.next_token_distributions(finite, np.array([[0]]))[0]
    counts = np.bincount(first, minlength=finite.n_terminals)
    assert stats.chisquare(counts, d[0, :-1] * len(first)).pvalue > 1e-3
    after_a = s.x[s.x[:, 0] == 0]
    nxt = np.where(after_a[:, 1] >= 0, after_a[:, 1], finite.n_terminals)
    counts = np.bincount(nxt, minlength=finite.n_terminals + 1)
    expected = d[1] * len(after_a)
    keep = expected > 0
    assert counts[~keep].sum() == 0
    assert stats.chisquare(counts[keep], expected[keep]).pvalue > 1e-3


def test_rhm_as_pcfg_gives_the_same_strings_and_probabilities():
    world = rhm.make_world(vocab_size=6, n_classes=4, n_synonyms=2, tuple_size=2, n_levels=2,
                           rule_exponent=0.7, root_prior=[0.1, 0.2, 0.3, 0.4], rng=1)
    g = from_rhm(world)
    r = rhm.sample(world, 300, rng=2)
    # RHM probability of a string: prior(root) * prod of the rule probabilities (unambiguous)
    p_rhm = world.root_prior[r.levels[0][:, 0]] * np.prod(world.rule_probs[r.aux["rules"]], axis=1)
    x = r.x.astype(int)
    np.testing.assert_allclose(np.exp(inf.log_prob(g, x)), p_rhm, rtol=1e-12)
    assert inf.parse_counts(g, x[:20]) == [1] * 20
    # and every PCFG sample is an RHM string with the same latent levels (one level lower:
    # the PCFG has the extra start symbol S -> class)
    s = pcfg.sample(g, 300, rng=3)
    dec = rhm.decode(world, s.x.astype(np.uint8))
    value = np.array([-1 if nm == "S" else int(nm.rsplit("_", 1)[-1].lstrip("C"))
                      for nm in g.nonterminals]
                     + [int(t) for t in g.terminals])
    for l, lv_rhm in enumerate(dec.levels):
        per_token = np.repeat(lv_rhm, 2 ** (world.n_levels - l), axis=1)
        np.testing.assert_array_equal(value[s.levels[l + 1]], per_token)
    # total probability over the whole language is one (finite language)
    lang = enumerate_trees(g, 4)
    assert math.fsum(p for ts in lang.values() for p, _ in ts) == pytest.approx(1.0)


def test_data_file_stores_the_grammar_and_can_be_reparsed_without_the_config(tmp_path):
    from tmr import io
    from tmr.config import data_config_from_dict

    cfg = data_config_from_dict({
        "seed": 1, "n_samples": 300, "chunk_size": 128,
        "generator": {"name": "pcfg", "preset": "english", "max_length": 16, "max_depth": 12},
        "splits": {"test_fraction": 0.5}})
    path = io.write_dataset(tmp_path / "english.h5", cfg)
    s, attrs = io.read(path)
    world = pcfg.make_world(preset="english")
    assert s.world.to_text() == world.to_text()
    direct = pcfg.sample(world, 300, rng=io.streams(1, "data")["data"], max_length=16,
                         max_depth=12)
    np.testing.assert_array_equal(s.x, direct.x)
    np.testing.assert_array_equal(s.aux["spans"], direct.aux["spans"])
    n = int(s.aux["lengths"][0])
    assert inf.log_prob(s.world, s.x[:1, :n].astype(int))[0] < 0
    assert 0 <= attrs["meta"]["rejection_rate"] < 0.05


def test_ancestor_posteriors_are_depth_distributions_in_layered_grammars_and_one_hot_in_rhm():
    g = pcfg.make_world(preset="layered", params={"symbols_per_level": [1, 2, 2]}, rng=2)
    s = pcfg.sample(g, 50, rng=0)
    n = int(s.aux["lengths"][0])
    soft = inf.ancestor_posteriors(g, s.x[:1, :n].astype(int))[0]  # (n, N)
    for d in range(g.layer.max() + 1):
        np.testing.assert_allclose(soft[:, g.layer == d].sum(axis=1), 1.0, atol=1e-12)
    # the RHM is unambiguous: soft labels are the one-hot generating levels
    world = rhm.make_world(vocab_size=6, n_classes=4, n_synonyms=2, tuple_size=2, n_levels=2,
                           rng=1)
    gr = from_rhm(world)
    s = pcfg.sample(gr, 20, rng=3)
    soft = inf.ancestor_posteriors(gr, s.x.astype(int))  # (20, 4, N)
    for lv in s.levels[:-1]:
        picked = np.take_along_axis(soft, lv.astype(int)[..., None], axis=-1)[..., 0]
        np.testing.assert_allclose(picked, 1.0, atol=1e-12)
