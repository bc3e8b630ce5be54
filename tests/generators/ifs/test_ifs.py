"""IFS fractals: dimensions, exact addresses, cylinder laws, contractivity, seeding."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import spatial, stats

from generators import _rng, ifs, streams
from generators.ifs import maps as ifs_maps
from generators.ifs import render as ifs_render

SIERPINSKI = math.log(3) / math.log(2)
CANTOR = math.log(2) / math.log(3)
KOCH = math.log(4) / math.log(3)


# ----------------------------------------------------------------- dimensions

def test_sierpinski_box_dimension_is_log3_over_log2():
    w = ifs.make_world(system="sierpinski")
    pts = ifs.cylinder_points(w, 10)  # cylinders 2^-10, below the finest box 2^-8
    est = ifs_maps.box_counting_dimension(pts, w.box[0, 0], min_level=1, max_level=8,
                                          per_octave=1, n_offsets=1)
    assert abs(est - SIERPINSKI) < 0.03


def test_cantor_box_dimension_is_log2_over_log3():
    w = ifs.make_world(system="cantor")
    pts = ifs.cylinder_points(w, 12)
    est = ifs_maps.box_counting_dimension(pts, w.box[0, 0], min_level=1, max_level=8,
                                          per_octave=1, n_offsets=1, base=3.0)
    assert abs(est - CANTOR) < 0.03
    # dyadic boxes, shifted grids: the generic estimator, not tuned to the ratio 1/3
    generic = ifs_maps.box_counting_dimension(pts, w.box[0, 0], min_level=4, max_level=10,
                                              per_octave=2, n_offsets=4)
    assert abs(generic - CANTOR) < 0.03


def test_koch_box_dimension_is_log4_over_log3():
    w = ifs.make_world(system="koch")  # rotated pieces: no grid aligns, generic estimator
    pts = ifs.cylinder_points(w, 8)  # cylinders 3^-8 ~ 1.5e-4, below the finest box 2^-10
    est = ifs_maps.box_counting_dimension(pts, w.box[0, 0], min_level=4, max_level=10,
                                          per_octave=2, n_offsets=4)
    assert abs(est - KOCH) < 0.03


def test_classic_similarity_dimensions_solve_moran():
    for name, dim in ifs_maps.CLASSIC_DIMENSIONS.items():
        if dim is None:
            continue
        lin, _, _, _ = ifs_maps.classic_system(name)
        assert ifs_maps.similarity_dimension(ifs_maps.spectral_norms(lin)) == \
            pytest.approx(dim, abs=1e-9)


def _grid_similitudes(seed: int, n_maps: int = 5) -> tuple[list[list[float]], np.ndarray]:
    """Similitudes x -> r x + t sending the unit square into distinct cells of a 3x3
    grid (open set condition with the open unit square), ratios in [0.2, 1/3]."""
    gen = np.random.default_rng(seed)
    cells = gen.choice(9, size=n_maps, replace=False)
    ratios = gen.uniform(0.2, 1 / 3, size=n_maps)
    rows = []
    for c, r in zip(cells, ratios, strict=True):
        t = np.array([c % 3, c // 3]) / 3 + gen.uniform(0, 1 / 3 - r, size=2)
        rows.append([r, 0.0, 0.0, r, *t])
    return rows, ratios


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_similitudes_box_dimension_matches_moran_equation(seed):
    rows, ratios = _grid_similitudes(seed)
    w = ifs.make_world(maps=rows, probabilities="uniform")
    moran = ifs_maps.similarity_dimension(ratios)
    pts = ifs.cylinder_points(w, 7)  # cylinders <= 3^-7 ~ 4.6e-4 < 2^-10
    est = ifs_maps.box_counting_dimension(pts, np.array([[0.0, 0.0], [1.0, 1.0]]),
                                          min_level=3, max_level=10, per_octave=2, n_offsets=4)
    # unequal ratios spread the finite-size bias over the scales; 0.05 covers it
    assert abs(est - moran) < 0.05, (est, moran)


# ----------------------------------------------------------------- addresses

def test_sierpinski_address_counts_are_powers_of_three():
    w = ifs.make_world(system="sierpinski")
    s = ifs.sample(w, 20000, rng=0, depth=10, n_address_levels=4)
    assert s.level_names == ("address1", "address2", "address3", "address4")
    for l, lv in enumerate(s.levels, start=1):
        assert len(np.unique(lv)) == 3**l  # 20000 draws cover 81 cells w.p. ~1 - 1e-100
    # levels are prefixes of the stored digits, outermost first
    digits = s.aux["address"].astype(np.int64)
    for l, lv in enumerate(s.levels, start=1):
        np.testing.assert_array_equal(lv, (digits[:, :l] * 3 ** np.arange(l - 1, -1, -1))
                                      .sum(axis=1))


@pytest.mark.parametrize("depth", [None, 12])
def test_sierpinski_images_at_128px_have_no_ambiguous_pixel(depth):
    w = ifs.make_world(system="sierpinski")
    s = ifs.sample(w, 3, rng=1, mode="images", image_size=128, n_points=50_000, depth=depth)
    hit = s.x > 0
    for l, amap in enumerate(s.levels, start=1):
        assert np.all(amap[hit] >= 0) and np.all(amap[~hit] == -1)
        assert all(len(np.unique(a[a >= 0])) == 3**l for a in amap)
    assert not s.aux["overlap"].any() and np.all(s.aux["ambiguous"] == 0)
    # level-1 pieces sit where the maps put them: 0 lower left, 1 lower right, 2 upper left
    a1 = s.levels[0][0]
    assert set(np.unique(a1[64:, :64])) <= {-1, 0} and set(np.unique(a1[64:, 64:])) <= {-1, 1}
    assert set(np.unique(a1[:64, :64])) <= {-1, 2}


def test_overlapping_system_marks_ambiguous_pixels_and_soft_labels_sum_to_one():
    # two maps of ratio 0.6 on [0, 1]: the pieces overlap on [0.4, 0.6]
    rows = [[0.6, 0, 0, 0.6, 0, 0], [0.6, 0, 0, 0.6, 0.4, 0.4]]
    w = ifs.make_world(maps=rows, probabilities="uniform")
    s = ifs.sample(w, 2, rng=0, mode="images", image_size=64, n_points=20_000, depth=12,
                   soft_levels=2)
    hit = s.x > 0
    assert s.aux["overlap"].any()
    np.testing.assert_array_equal(s.aux["overlap"], hit & (s.levels[0] < 0))
    for l in (1, 2):
        soft = s.aux[f"soft_address{l}"]
        np.testing.assert_allclose(soft.sum(-1)[hit], 1.0, atol=1e-5)
        assert np.all(soft.sum(-1)[~hit] == 0)
        single = s.levels[l - 1] >= 0  # hard label = the soft histogram's only code
        np.testing.assert_array_equal(soft.argmax(-1)[single], s.levels[l - 1][single])
        assert np.all(soft.max(-1)[single] == 1.0)
    # ambiguity only grows with depth: a pixel with two level-1 codes has two level-2 codes
    assert np.all(s.levels[1][s.levels[0] < 0] < 0)


def _inverse_prefix(w: ifs.World, x: np.ndarray, address: np.ndarray, l: int) -> np.ndarray:
    """w_{a_l}^-1 ∘ … ∘ w_{a_1}^-1 (x) for points (n, d) and digits (n, >= l)."""
    lin, off, _ = w.system_maps(0)
    inv = np.linalg.inv(lin)  # (K, d, d)
    y = x.copy()
    for j in range(l):
        a = address[:, j]
        y = np.einsum("nij,nj->ni", inv[a], y - off[a])
    return y


@pytest.mark.parametrize("seed", [3, 4])
def test_address_prefix_maps_point_into_its_cylinder(seed):
    w = ifs.make_world(n_maps=3, rng=seed, sigma=4.0)
    s = ifs.sample(w, 500, rng=seed, depth=20)
    ref = ifs.cylinder_points(w, 9)  # within r_max^9 * diam of every attractor point
    tree = spatial.cKDTree(ref)
    lo, hi = w.box[0, 0]
    tol = w.max_ratio**9 * float(np.linalg.norm(hi - lo)) + 1e-9
    for l in (1, 2, 3, 5):
        y = _inverse_prefix(w, s.x, s.aux["address"].astype(np.intp), l)
        assert np.max(tree.query(y)[0]) <= tol  # the preimage lies on the attractor


def test_chaos_game_points_are_their_addresses_applied_to_x0():
    w = ifs.make_world(system="fern")
    pts, addr = ifs.chaos_game(w, 64, 30, depth=30, rng=0)
    lin, off, _ = w.system_maps(0)
    x0 = ifs_maps.fixed_points(lin[:1], off[:1])[0]
    for t in (0, 5, 29):
        x = np.broadcast_to(x0, (64, 2)).copy()
        for j in range(29, -1, -1):  # innermost first; digits before the start are 0
            a = addr[:, t, j]
            x = np.einsum("nij,nj->ni", lin[a], x) + off[a]
        np.testing.assert_allclose(pts[:, t], x, atol=1e-12)
    assert np.all(addr[:, 0, 1:] == 0)


# ----------------------------------------------------------------- laws

@pytest.mark.parametrize("system,seed", [("fern", 0), (None, 1)])
def test_cylinder_mass_is_product_of_map_probabilities(system, seed):
    w = (ifs.make_world(system=system) if system else
         ifs.make_world(n_maps=3, rng=seed, probabilities="det"))
    n = 200_000
    s = ifs.sample(w, n, rng=seed, depth=8, n_address_levels=2)
    p = w.probs[0, 0]
    expected = n * np.outer(p, p).ravel()  # (K^2,) cells a1*K + a2
    observed = np.bincount(s.levels[1], minlength=len(expected))
    keep = expected > 5  # χ² needs expected counts >= 5; the rest must be rare
    assert observed[~keep].sum() <= max(5 * expected[~keep].sum(), 20)
    chi2 = stats.chisquare(observed[keep], expected[keep] * observed[keep].sum()
                           / expected[keep].sum())
    assert chi2.pvalue > 1e-3  # fixed seed; a correct law fails 1 time in 1000


# ----------------------------------------------------------------- systems

@pytest.mark.parametrize("seed", range(10))
def test_random_and_jittered_systems_are_contractive(seed):
    w = ifs.make_world(n_maps=2 + seed % 5, n_systems=3, n_instances=4, jitter=0.1, rng=seed)
    assert w.linear.shape == (3, 4, 2 + seed % 5, 2, 2)
    assert ifs_maps.spectral_norms(w.linear).max() < 1.0
    np.testing.assert_allclose(w.probs.sum(-1), 1.0)
    # instance 0 of each class is the unjittered system, the others differ
    assert not np.allclose(w.linear[:, 0], w.linear[:, 1])


@pytest.mark.parametrize("n_maps,dim", [(2, 2), (4, 2), (6, 2), (3, 3), (3, 1)])
def test_sigma_factor_is_met_exactly(n_maps, dim):
    lo, hi = ifs_maps.sigma_factor_range(n_maps, dim)
    for seed in range(5):
        alpha = (lo + hi) / 2
        w = ifs.make_world(n_maps=n_maps, dim=dim, sigma=alpha, rng=seed)
        sv = np.linalg.svd(w.linear[0, 0], compute_uv=False)  # (K, d) descending
        assert float((sv * np.arange(1, dim + 1)).sum()) == pytest.approx(alpha, rel=1e-9)
        assert sv.max() <= ifs_maps.MAX_SINGULAR + 1e-12


def test_points_lie_in_the_attractor_box_and_images_are_filled():
    for name in ifs_maps.CLASSIC_DIMENSIONS:
        w = ifs.make_world(system=name)
        s = ifs.sample(w, 2000, rng=0)
        lo, hi = w.box[0, 0]
        assert np.all(s.x >= lo - 1e-9) and np.all(s.x <= hi + 1e-9), name
        img = ifs.sample(w, 1, rng=0, mode="images", image_size=64, n_points=20000)
        assert 0 < img.aux["fill_rate"][0] < 1


def test_families_give_system_and_instance_levels_above_addresses():
    w = ifs.make_world(n_maps=3, n_systems=4, n_instances=3, jitter=0.05, rng=0)
    s = ifs.sample(w, 5000, rng=1)
    assert s.level_names[:2] == ("system", "instance")
    np.testing.assert_array_equal(s.levels[0], s.levels[1] // 3)  # instances nest in systems
    assert len(np.unique(s.levels[1])) == 12
    im = ifs.sample(w, 8, rng=2, mode="images", image_size=32, n_points=2000)
    assert im.levels[0].shape == (8,) and im.levels[2].shape == (8, 32, 32)


# ----------------------------------------------------------------- seeding

def test_same_seed_same_bytes_and_chunking_does_not_matter():
    w = ifs.make_world(n_maps=4, rng=0)
    n = _rng.BLOCK_SIZE + 1000
    whole = ifs.sample(w, n, rng=5, depth=12)
    again = ifs.sample(w, n, rng=5, depth=12)
    np.testing.assert_array_equal(whole.x, again.x)
    parts = list(ifs.iter_chunks(w, n, rng=5, depth=12, chunk_size=7000))
    np.testing.assert_array_equal(np.concatenate([p.x for p in parts]), whole.x)
    np.testing.assert_array_equal(np.concatenate([p.aux["address"] for p in parts]),
                                  whole.aux["address"])
    np.testing.assert_array_equal(ifs.sample(w, 100, rng=5, depth=12).x, whole.x[:100])
    assert not np.array_equal(ifs.sample(w, 100, rng=6, depth=12).x, whole.x[:100])


def test_world_seed_is_reproducible():
    a = ifs.make_world(n_maps=3, n_systems=2, n_instances=2, jitter=0.1, rng=9)
    b = ifs.make_world(n_maps=3, n_systems=2, n_instances=2, jitter=0.1, rng=9)
    np.testing.assert_array_equal(a.linear, b.linear)
    np.testing.assert_array_equal(a.box, b.box)


def test_image_depends_only_on_index_and_seed():
    w = ifs.make_world(n_maps=3, n_systems=3, rng=0)
    kw: dict[str, Any] = dict(image_size=32, n_points=3000, n_address_levels=2, value="count",
                              soft_levels=1)
    s = ifs.sample(w, 6, rng=11, mode="images", **kw)
    chunks = list(ifs.iter_chunks(w, 6, rng=11, mode="images", chunk_size=4, **kw))
    np.testing.assert_array_equal(np.concatenate([c.x for c in chunks]), s.x)
    for i in (5, 2):  # any order, as different workers would
        q, r = ifs_render.render(w, i, 11, depth=None, **kw)
        np.testing.assert_array_equal(r.image, s.x[i])
        np.testing.assert_array_equal(r.address_maps[1], s.levels[2][i])
        assert q == s.levels[0][i]


def test_density_images_are_normalised():
    w = ifs.make_world(system="dragon")
    s = ifs.sample(w, 2, rng=0, mode="images", image_size=32, n_points=5000, value="density")
    assert s.x.dtype == np.float32 and np.allclose(s.x.max(axis=(1, 2)), 1.0)


# ----------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs,match", [
    (dict(maps=[[1.2, 0, 0, 0.5, 0, 0]]), "not contractive"),
    (dict(maps=[[0.5, 0, 0, 0.5, 0, 0]] * 2, probabilities=[0.5, 0.6]), "sum to"),
    (dict(maps=[[0.5, 0, 0, 0.5, 0]]), "each map is one row"),
    (dict(system="mandelbrot"), "unknown"),
    (dict(system="koch", maps=[[0.5, 0, 0, 0.5, 0, 0]]), "not both"),
    (dict(system="koch", dim=3), "2-dimensional"),
    (dict(system="koch", n_maps=3), "has 4 maps"),
    (dict(n_maps=1), "at least 2"),
    (dict(n_maps=3, sigma=100.0), "sigma=100"),
    (dict(n_maps=3, n_instances=3), "jitter"),
    (dict(n_maps=3, probabilities="area"), "'det', 'uniform'"),
    (dict(system="fern", sigma=4.0), "random systems only"),
    (dict(system="fern", n_systems=2), "one class"),
])
def test_bad_worlds_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ifs.make_world(**kwargs, rng=0)


@pytest.mark.parametrize("kwargs,match", [
    (dict(mode="video"), "mode="),
    (dict(depth=100), "depth=100"),
    (dict(depth=3, n_address_levels=4), "exceeds depth"),
    (dict(mode="images", value="rgb"), "value="),
    (dict(mode="images", image_size=2), "image_size=2"),
])
def test_bad_sampling_arguments_raise_clear_errors(kwargs, match):
    w = ifs.make_world(system="sierpinski")
    with pytest.raises(ValueError, match=match):
        ifs.sample(w, 4, rng=0, **kwargs)


def test_images_need_two_dimensions_and_types_are_checked():
    w3 = ifs.make_world(n_maps=3, dim=3, rng=0)
    with pytest.raises(ValueError, match="dim=2"):
        ifs.sample(w3, 1, rng=0, mode="images")
    with pytest.raises(TypeError, match="n_maps"):
        ifs.make_world(n_maps=2.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(5))
def test_alias_table_has_exactly_the_word_law(seed):
    p = np.random.default_rng(seed).dirichlet(np.full(50, 0.3))
    accept, alias = ifs.alias_table(p)
    implied = accept + np.bincount(alias, weights=1 - accept, minlength=50)
    np.testing.assert_allclose(implied / 50, p, atol=1e-12)


# ----------------------------------------------------------------- configs and files

CONFIGS = Path(__file__).parents[3] / "configs"


@pytest.mark.parametrize("name", ["ifs_points.toml", "ifs_images.toml", "ifs_family.toml"])
def test_shipped_configs_write_and_read_back(name, tmp_path):
    from tmr import io
    from tmr.config import load_data_config

    cfg = load_data_config(CONFIGS / name, ["n_samples=6", "generator.image_size=32",
                                            "generator.n_points=2000"])
    path = io.write_dataset(tmp_path / "d.h5", cfg)
    s, attrs = io.read(path)
    seeds = streams(cfg.seed, "world", "data")
    world = cfg.spec.make_world(cfg.generator, seeds["world"])
    np.testing.assert_array_equal(s.world.linear, world.linear)
    ref = ifs.sample(world, 6, rng=seeds["data"], **cfg.spec.split_config(cfg.generator)[1])
    np.testing.assert_array_equal(s.x, ref.x)
    assert s.level_names == ref.level_names and attrs["generator"] == "ifs"


def test_user_maps_and_probabilities_from_a_config():
    from tmr.config import data_config_from_dict

    cfg = data_config_from_dict({"generator": {
        "name": "ifs", "maps": [[0.5, 0, 0, 0.5, 0, 0], [0.5, 0, 0, 0.5, 0.5, 0.5]],
        "probabilities": [0.25, 0.75], "depth": 6}})
    w = cfg.spec.make_world(cfg.generator, 0)
    np.testing.assert_allclose(w.probs[0, 0], [0.25, 0.75])
    assert w.kind == "user" and w.linear.shape == (1, 1, 2, 2, 2)


def test_image_box_dimension_of_a_full_square_is_two_and_of_a_line_is_one():
    full = np.ones((64, 64), bool)
    line = np.zeros((64, 64), bool)
    line[10] = True
    assert ifs_render.mask_box_dimension(full) == pytest.approx(2.0)
    assert ifs_render.mask_box_dimension(line) == pytest.approx(1.0)
    assert ifs_render.mask_box_dimension(np.zeros((64, 64), bool)) == 0.0


def test_colour_images_keep_labels_and_paint_background_where_empty():
    w = ifs.make_world(system="koch")
    kw: dict[str, Any] = dict(mode="images", image_size=32, n_points=3000)
    grey = ifs.sample(w, 3, rng=4, **kw)
    rgb = ifs.sample(w, 3, rng=4, colour=True, **kw)
    assert rgb.x.shape == (3, 32, 32, 3) and rgb.x.dtype == np.float32
    for a, b in zip(grey.levels, rgb.levels, strict=True):
        np.testing.assert_array_equal(a, b)
    for i in range(3):
        empty = grey.x[i] == 0
        bg = rgb.x[i][empty]  # (n_empty, 3): one colour, below BACKGROUND_SCALE
        assert np.all(bg == bg[0]) and np.all(bg < ifs_render.BACKGROUND_SCALE)
    assert not np.allclose(rgb.x[0][grey.x[0] == 0][0], rgb.x[1][grey.x[1] == 0][0])


def test_empty_draws_have_the_right_shapes():
    w = ifs.make_world(system="fern")
    assert ifs.sample(w, 0, rng=0, depth=12).aux["address"].shape == (0, 12)
    assert ifs.points(w, 0, depth=12)[1].shape == (0, 12)
    assert ifs.sample(w, 0, rng=0, mode="images", image_size=16).x.shape == (0, 16, 16)
