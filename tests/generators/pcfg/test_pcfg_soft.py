"""Soft (posterior) ancestor labels of layered grammars: generators.pcfg.soft."""

import math

import numpy as np
import pytest
from pcfg_brute import enumerate_trees

from generators import pcfg
from generators.pcfg import inference as pcfg_inference
from generators.pcfg import soft as pcfg_soft


def _brute_marginals(g, y, trees):
    """P(ancestor of token t is A | y) by summing over every tree of the string y."""
    z = math.fsum(p for p, _ in trees)
    out = np.zeros((len(y), g.n_nonterminals))
    for p, nodes in trees:
        for start, end, sym in nodes:
            out[start:end, sym] += p / z
    return out


def test_posteriors_equal_brute_force_marginals_over_every_tree():
    g = pcfg.make_world(preset="layered", params={"symbols_per_level": [1, 2, 2],
                                                  "n_terminals": 2}, rng=4)
    by_string = enumerate_trees(g, 27)
    ambiguous = [y for y, ts in by_string.items() if len(ts) > 1]
    assert ambiguous, "the test grammar must be ambiguous"
    strings = sorted(by_string, key=lambda y: (-len(by_string[y]), y))[:12]
    T = max(map(len, strings))
    x = np.full((len(strings), T), -1)
    for i, y in enumerate(strings):
        x[i, :len(y)] = y
    soft = pcfg_soft.posterior_levels(g, x, np.array([len(y) for y in strings]))
    for i, y in enumerate(strings):
        ref = _brute_marginals(g, y, by_string[y])
        for d, p in enumerate(soft):
            # float32 storage: 1e-6 relative is its resolution
            np.testing.assert_allclose(p[i, :len(y)], ref[:, g.layer == d], atol=2e-6)
            np.testing.assert_array_equal(p[i, len(y):], 0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_posteriors_equal_the_span_chart_and_map_labels_are_consistent(seed):
    g = pcfg.make_world(preset="layered", params={"symbols_per_level": [1, 3, 3, 3]}, rng=seed)
    s = pcfg.sample(g, 8, rng=seed)
    soft = pcfg_soft.posterior_levels(g, s.x, s.aux["lengths"])
    hard = pcfg_soft.map_labels(g, soft)
    for i in range(4):
        n = int(s.aux["lengths"][i])
        ref = pcfg_inference.ancestor_posteriors(g, s.x[i:i + 1, :n].astype(int))[0]
        for d, p in enumerate(soft):
            np.testing.assert_allclose(p[i, :n], ref[:, g.layer == d], atol=1e-6)
    for d, (p, lab) in enumerate(zip(soft, hard, strict=True)):
        valid = s.levels[d] >= 0
        np.testing.assert_array_equal(lab >= 0, valid)
        np.testing.assert_allclose(p.sum(axis=-1)[valid], 1.0, atol=1e-6)
        # the MAP label is a depth-d symbol, and the generating one has positive mass
        assert np.all(g.layer[lab[valid]] == d)
        truth = np.flatnonzero(g.layer == d).searchsorted(s.levels[d][valid])
        assert np.all(np.take_along_axis(p[valid], truth[:, None], axis=1) > 0)


def test_sample_stores_soft_levels_and_they_do_not_change_the_draw():
    g = pcfg.make_world(preset="layered", params={"symbols_per_level": [1, 2, 2]}, rng=2)
    plain = pcfg.sample(g, 40, rng=5)
    soft = pcfg.sample(g, 40, rng=5, soft_levels=True)
    np.testing.assert_array_equal(plain.x, soft.x)
    for d in range(3):
        key = f"posterior_depth{d}"
        assert soft.aux[key].shape == (*plain.x.shape, int(np.sum(g.layer == d)))
        assert key not in plain.aux
    chunks = list(pcfg.iter_chunks(g, 40, rng=5, chunk_size=7, soft_levels=True))
    np.testing.assert_array_equal(np.concatenate([c.aux["posterior_depth2"] for c in chunks]),
                                  soft.aux["posterior_depth2"])


def test_soft_levels_need_a_layered_grammar():
    g = pcfg.make_world(preset="dyck")
    with pytest.raises(ValueError, match="layered"):
        pcfg.sample(g, 4, rng=0, max_length=20, soft_levels=True)


def test_soft_levels_go_through_the_file_and_give_the_probe_ceiling(tmp_path):
    """tmr generate stores the posteriors; tmr train-and-probe writes the MAP labeller's
    scores (posterior_ceiling.csv) and prints them beside the best probes."""
    import csv

    from typer.testing import CliRunner

    from tmr import io
    from tmr.cli import app

    data = tmp_path / "soft.h5"
    gen = CliRunner().invoke(app, [
        "generate", "configs/pcfg_layered_soft.toml", "--out", str(data), "--n-samples", "300",
        "--set", "generator.params.symbols_per_level=[1, 2, 2]"])
    assert gen.exit_code == 0, gen.output
    s, _ = io.read(data, "test")
    g = s.world
    for d in range(3):
        p = s.aux[f"posterior_depth{d}"]
        valid = s.levels[d] >= 0
        np.testing.assert_allclose(p.sum(axis=-1)[valid], 1.0, atol=1e-6)
    cfg = tmp_path / "c.toml"
    cfg.write_text('seed = 1\ndevice = "cpu"\n[model]\nkind = "mlp"\nwidth = 8\n'
                   '[optim]\nsteps = 4\neval_every = 2\n'
                   '[probe]\nmax_samples = 60\ninner_folds = 2\nsites = ["embed"]\n')
    res = CliRunner().invoke(app, ["train-and-probe", str(cfg), "--data", str(data), "--out",
                                   str(tmp_path / "run"), "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert "MAP ceiling" in res.output
    rows = list(csv.DictReader((tmp_path / "run/posterior_ceiling.csv").open()))
    mean = {(r["level"], r["metric"]): float(r["value"]) for r in rows if r["position"] == "mean"}
    # the root is the start symbol: known exactly from any string
    assert mean[("depth0", "accuracy")] == 1.0
    for d in (1, 2):
        # a posterior's top mass is at least 1/K_d and at most 1
        k = int(np.sum(g.layer == d))
        assert 1.0 / k <= mean[(f"depth{d}", "mean_max_posterior")] <= 1.0
        assert 0.0 <= mean[(f"depth{d}", "accuracy")] <= 1.0


def _kernel64(g, x, lengths, kernel):
    """Run the forward-backward kernel with float64 outputs: (n, T, N) by nonterminal."""
    f = pcfg_soft._flat(g)
    n, T = x.shape
    N = len(f.layer)
    flat = np.zeros(n * T * N)
    err = np.full(3, -1, np.int64)
    kernel(x, lengths, f.off, f.final, f.sym, f.st_ptr, f.st_idx, f.st_val, f.ip_off, f.ip,
           f.ind, f.dat, f.seg, f.width, f.col, flat, err)
    assert err[0] == -1
    out = np.empty((n, T, N))
    for u in range(N):  # the documented flat layout, read back
        lo = n * T * f.seg[u]
        out[:, :, u] = flat[lo:lo + n * T * f.width[u]].reshape(n, T, -1)[:, :, f.col[u]]
    return out


def test_kernel_equals_its_python_form_and_the_scipy_recursion():
    g = pcfg.make_world(preset="layered", params={"symbols_per_level": [1, 3, 3, 3],
                                                  "n_terminals": 2}, rng=1)
    s = pcfg.sample(g, 6, rng=3)
    x, lengths = pcfg_soft._check(g, s.x, s.aux["lengths"])
    fast = _kernel64(g, x, lengths, pcfg_soft._forward_backward)
    slow = _kernel64(g, x, lengths, pcfg_soft._forward_backward.py_func)
    np.testing.assert_array_equal(fast, slow)
    for i, m in enumerate(lengths):
        # the scipy recursion over whole vectors: equal up to rounding
        np.testing.assert_allclose(fast[i, :m], pcfg_soft._one(g, x[i, :m]), rtol=0, atol=1e-12)
        np.testing.assert_array_equal(fast[i, m:], 0.0)
    soft = pcfg_soft.posterior_levels(g, s.x, s.aux["lengths"])
    ref = pcfg_soft.posterior_levels_scipy(g, s.x, s.aux["lengths"])
    for d, (p, q) in enumerate(zip(soft, ref, strict=True)):
        assert p.dtype == np.float32 and p.flags.c_contiguous
        np.testing.assert_array_equal(p, fast[:, :, g.layer == d].astype(np.float32))
        np.testing.assert_allclose(p, q, rtol=0, atol=1e-7)  # float32 rounding of equal values


def test_without_numba_the_scipy_recursion_gives_the_same_levels(monkeypatch):
    g = pcfg.make_world(preset="layered", params={"symbols_per_level": [1, 2, 2]}, rng=2)
    s = pcfg.sample(g, 5, rng=1)
    fast = pcfg_soft.posterior_levels(g, s.x, s.aux["lengths"])
    monkeypatch.setattr(pcfg_soft._jit, "HAVE_NUMBA", False)
    slow = pcfg_soft.posterior_levels(g, s.x, s.aux["lengths"])
    for p, q in zip(fast, slow, strict=True):
        np.testing.assert_allclose(p, q, rtol=0, atol=1e-7)


@pytest.mark.parametrize("numba", [True, False])
def test_strings_of_probability_zero_and_bad_inputs_are_refused(monkeypatch, numba):
    monkeypatch.setattr(pcfg_soft._jit, "HAVE_NUMBA", numba)
    # depth 3 and rule lengths 2-3: every string has 8 to 27 tokens
    g = pcfg.make_world(preset="layered", params={"symbols_per_level": [1, 2, 2],
                                                  "n_terminals": 2}, rng=4)
    ok = pcfg.sample(g, 1, rng=0)
    n = int(ok.aux["lengths"][0])
    x = np.zeros((3, 30), np.int64)
    x[:, :n] = ok.x[0, :n]
    with pytest.raises(ValueError, match=r"sample 1: .*probability 0.*no derivation ends it"):
        pcfg_soft.posterior_levels(g, x, np.array([n, 1, n]))
    with pytest.raises(ValueError, match=r"sample 2: .*probability 0.*reaches token 17\)"):
        pcfg_soft.posterior_levels(g, x, np.array([n, n, 30]))  # longer than any string
    for lengths in ([n, 0, n], [n, 31, n]):
        with pytest.raises(ValueError, match="sample 1 "):
            pcfg_soft.posterior_levels(g, x, np.array(lengths))
    x[2, 3] = 2
    with pytest.raises(ValueError, match=r"sample 2 .*outside 0\.\.1"):
        pcfg_soft.posterior_levels(g, x, np.array([n, n, n]))
