"""tmr.planted: kept / discarded / absent verdicts and the bound's verdict on known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tmr import planted
from tmr.rg.base import CoarseGrained
from tmr.rg.spectral import KernelScheme, PCAScheme, conjugate_kernel

DANGER_SHIFT = 0.3  # the dangerous bit moves coordinate 7 by this much


def _synthetic(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Activations (n, 8) with a known layout: coordinate 0 = 10·nuisance bit (variance 25),
    coordinates 1..4 = 3·one-hot(root) (root in 0..3: a rank-3 block of variance ~1.7 per
    direction), coordinate 7 = 0.3·dangerous bit (Bernoulli(0.1): variance 0.008), noise of
    sd 0.01 everywhere; 'absent' is a fair bit that appears nowhere. A top-4 PCA keeps the
    nuisance and root directions and discards coordinate 7."""
    g = np.random.default_rng(seed)
    t = {"nuisance": g.integers(0, 2, n), "true_root": g.integers(0, 4, n),
         "dangerous": (g.random(n) < 0.1).astype(np.int64), "absent": g.integers(0, 2, n)}
    h = 0.01 * g.standard_normal((n, 8))
    h[:, 0] += 10 * t["nuisance"]
    h[:, 1:5] += 3 * np.eye(4)[t["true_root"]]
    h[:, 7] += DANGER_SHIFT * t["dangerous"]
    return h, t


def test_decodability_is_one_when_separable_and_near_zero_when_independent():
    h, t = _synthetic()
    assert planted.decodability(h, t["dangerous"]) == pytest.approx(1.0)
    assert planted.decodability(h, t["true_root"]) == pytest.approx(1.0)
    # 900 held-out rows: balanced accuracy of a random bit has sd ≈ 0.5/sqrt(900) ≈ 0.017,
    # i.e. ≈ 0.034 in decodability units; 0.15 is more than 4 sd
    assert abs(planted.decodability(h, t["absent"])) < 0.15
    assert planted.decodability(h[:, :0], t["dangerous"]) == 0.0  # nothing kept
    assert planted.decodability(h, np.zeros(len(h))) == 0.0  # one class
    two = np.stack([t["nuisance"], t["dangerous"]], axis=1)  # positions are averaged
    assert planted.decodability(h, two) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_k_pca_discards_the_rare_detail_and_keeps_the_loud_ones(seed):
    h, t = _synthetic(seed=seed)
    cg = PCAScheme()(h, 4)
    verdicts = {v.name: v for v in planted.assess(h, cg, t)}
    assert {k: v.verdict for k, v in verdicts.items()} == {
        "nuisance": "kept", "true_root": "kept", "dangerous": "discarded", "absent": "absent"}
    # the dangerous bit moves coordinate 7, which lies in the tail: ε_v is that shift
    # (difference of two class means of sd-0.01 noise over >= 300 rows: error < 0.005)
    assert verdicts["dangerous"].tail_displacement == pytest.approx(DANGER_SHIFT, abs=0.005)
    nuisance_eps = verdicts["nuisance"].tail_displacement
    assert nuisance_eps is not None and nuisance_eps < 0.01  # it lives in the kept modes
    # keeping every mode keeps everything the site carries
    assert {v.verdict for v in planted.assess(h, PCAScheme()(h, 8), t)} == {"kept", "absent"}


def test_kernel_schemes_score_their_kernel_pca_features():
    h, t = _synthetic(n=600)
    hc = h - h.mean(0)
    cg = KernelScheme("ck")(conjugate_kernel(hc), 4)
    verdicts = {v.name: v for v in planted.assess(h, cg, t)}
    assert verdicts["dangerous"].verdict == "discarded" and verdicts["nuisance"].verdict == "kept"
    assert verdicts["dangerous"].tail_displacement is None  # a sample-space tail


def test_planted_targets_reads_the_aux_arrays():
    aux: dict[str, np.ndarray] = {"planted_dangerous": np.array([0, 1], np.uint8),
                                  "rules": np.zeros((2, 3)),
                                  "planted_nuisance": np.ones((2, 4), np.uint8)}
    got = planted.planted_targets(aux)
    assert set(got) == {"dangerous", "nuisance"} and got["nuisance"].dtype == np.int64


@pytest.mark.parametrize("weight,revealed", [(10.0, True), (1.0, False)])
def test_bound_reveals_the_discarded_detail_exactly_when_it_can_flip(weight, revealed):
    """A linear head: logits (0, w·h₇ − 1), label 0, so the margin is g₀ = 1 − w·h₇ ≈ 1 on
    unmarked inputs and the tail bound at radius ε is w·ε (h₇ lies in the tail).
    At ε_v = 0.3: w = 10 gives 3 ≥ 1 (revealed), w = 1 gives 0.3 < 1 (certified safe)."""
    h, t = _synthetic(n=1000)
    lin = nn.Linear(8, 2).double()
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.copy_(torch.tensor([0.0, -1.0]))
        lin.weight[1, 7] = weight
    cg = PCAScheme()(h, 4)
    labels = np.zeros(len(h), dtype=np.int64)
    v = {r.name: r for r in planted.assess(h, cg, {"dangerous": t["dangerous"]},
                                           model=nn.Sequential(lin), site="input",
                                           labels=labels, n_bound=100)}["dangerous"]
    assert v.verdict == "discarded" and v.revealed is revealed
    # exact for a linear head: ε·w·‖V_tailᵀ e₇‖ (e₇ lies in the tail up to the noise's tilt)
    assert cg.tail_basis is not None
    tilt = float(np.linalg.norm(cg.tail_basis[7]))
    assert 0.999 < tilt <= 1.0 + 1e-12
    assert v.certified == pytest.approx(weight * v.tail_displacement * tilt, rel=1e-6)
    assert v.revealed_fraction == (1.0 if revealed else 0.0)


def test_bad_inputs_raise_clear_errors():
    h, t = _synthetic(n=200)
    cg = PCAScheme()(h, 2)
    with pytest.raises(ValueError, match=r"threshold=1\.5"):
        planted.assess(h, cg, t, threshold=1.5)
    with pytest.raises(ValueError, match="has 10 rows, h has 200"):
        planted.assess(h, cg, {"dangerous": t["dangerous"][:10]})
    with pytest.raises(ValueError, match="bounds need site= and labels="):
        planted.assess(h, cg, t, model=nn.Sequential(nn.Linear(8, 2)))
    odd = CoarseGrained(coarse=np.zeros((3, 2)), modes=np.zeros((8, 2)), relevance=np.ones(2))
    with pytest.raises(ValueError, match="not one row per sample"):
        planted.assess(h, odd, t)


def test_intervention_sets_the_displacement_to_the_counterfactual_move():
    h, t = _synthetic()
    cg = PCAScheme()(h, 4)
    moved = h.copy()
    moved[:, 7] += DANGER_SHIFT * (1 - 2 * t["dangerous"])  # toggle the dangerous bit
    v = planted.assess(h, cg, {"dangerous": t["dangerous"]},
                       counterfactual={"dangerous": moved})[0]
    assert cg.tail_basis is not None and v.displacement == "intervention"
    # every row moves by exactly 0.3·e₇, whose tail part has norm 0.3·‖V_tailᵀe₇‖
    assert v.tail_displacement == pytest.approx(
        DANGER_SHIFT * float(np.linalg.norm(cg.tail_basis[7])), rel=1e-9)
    with pytest.raises(ValueError, match="counterfactual activations have shape"):
        planted.assess(h, cg, {"dangerous": t["dangerous"]},
                       counterfactual={"dangerous": moved[:10]})


@pytest.mark.parametrize("seed", [0, 1])
def test_counterfactual_inputs_change_one_planted_variable_only(seed):
    from generators import rhm

    w = rhm.make_world(vocab_size=8, n_classes=8, n_synonyms=4, tuple_size=2, n_levels=3,
                       rng=seed)
    s = rhm.sample(w, 500, rng=seed, planted=["dangerous", "misaligned", "nuisance"],
                   dangerous_position=5, misaligned_tuple=2)
    cf = planted.counterfactual_inputs(s)
    x = s.x.astype(np.int64)
    d, c = s.aux["planted_dangerous"], s.aux["planted_nuisance"].astype(np.int64)
    # dangerous: only position 5 changes, its mark bit (weight 2) flips, the leaf stays
    diff = cf["dangerous"] != x
    assert not np.delete(diff, 5, axis=1).any() and diff[:, 5].all()
    np.testing.assert_array_equal((cf["dangerous"][:, 5] // 16) % 2, 1 - d)
    np.testing.assert_array_equal(cf["dangerous"] % 8, s.levels[-1])
    # nuisance: every case bit flips, every leaf stays
    np.testing.assert_array_equal((cf["nuisance"] // 8) % 2, 1 - c)
    np.testing.assert_array_equal(cf["nuisance"] % 8, s.levels[-1])
    # misaligned: the tree above the leaves is unchanged, the synonym at tuple 2 is r + 1
    back = rhm.decode(w, cf["misaligned"] % 8)
    for lv, orig in zip(back.levels[1:-1], s.levels[1:-1], strict=True):
        np.testing.assert_array_equal(lv, orig)
    np.testing.assert_array_equal(back.levels[0][:, 0], s.aux["planted_true_root"])
    np.testing.assert_array_equal(back.aux["rules"][:, 3 + 2],
                                  (s.aux["planted_misaligned"].astype(np.int64) + 1) % 4)
    np.testing.assert_array_equal(cf["misaligned"] // 8, x // 8)  # marks kept
    with pytest.raises(ValueError, match="no planted modes"):
        planted.counterfactual_inputs(rhm.sample(w, 5, rng=0))
