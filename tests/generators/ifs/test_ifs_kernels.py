"""Compiled IFS kernels: equal to their Python form, to a numpy evaluation of the same
tables, and to a numpy rasterisation; the same bytes with numba blocked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from generators import ifs
from generators.ifs import kernels as ifs_kernels
from generators.ifs import render as ifs_render
from generators.ifs import tables as ifs_tables

OVERLAP = [[0.6, 0, 0, 0.6, 0, 0], [0.6, 0, 0, 0.6, 0.4, 0.4]]  # pieces overlap on [.4, .6]


def _worlds() -> dict[str, tuple[ifs.World, int]]:
    """(world, depth): uniform and alias draws, 2 to 4 chunks, dimensions 1 to 3."""
    return {"sierpinski": (ifs.make_world(system="sierpinski"), 12),  # chunks 5, 7
            "fern": (ifs.make_world(system="fern"), 12),  # alias draws, chunks 6, 6
            "k20": (ifs.make_world(n_maps=20, rng=5), 7),  # chunks 1, 2, 2, 2
            "dim3": (ifs.make_world(n_maps=5, dim=3, rng=3), 9),
            "dim1": (ifs.make_world(n_maps=2, dim=1, rng=4), 20)}


def _numpy_codes(world: ifs.World, lengths: tuple[int, ...], u: np.ndarray) -> np.ndarray:
    """Word codes (C, n): ``floor(u K^L)``, then the alias method on the fraction."""
    out = np.empty(u.shape, np.int64)
    for i, length in enumerate(lengths):
        t = ifs_tables.table(world, 0, length)
        scaled = u[i] * world.n_maps**length
        out[i] = scaled
        if t.alias is not None:
            accept, alias = t.alias
            scaled -= out[i]
            out[i] = np.where(scaled < accept[out[i]], out[i], alias[out[i]])
    return out


def _numpy_digits(k: int, lengths: tuple[int, ...], codes: np.ndarray) -> np.ndarray:
    cols = []
    for length, c in zip(lengths, codes, strict=True):
        rest, part = c.copy(), []
        for _ in range(length):
            rest, dig = np.divmod(rest, k)
            part.append(dig)
        cols.extend(part[::-1])
    return np.stack(cols, axis=1).astype(np.uint8)


def _run_points(kernel, pk, u, i0, n, d, depth, n_levels):  # type: ignore[no-untyped-def]
    x, words = np.empty((n, d)), np.empty((n * depth + 7) // 8, np.uint64)
    lev = np.empty((n_levels, n), np.int64)
    heads = ifs_kernels.level_heads(pk.k, tuple(pk.lengths.tolist()),
                                    tuple(range(1, n_levels + 1)))
    kernel(u, i0, pk.uniform, pk.lengths, pk.sizes, pk.law, pk.aff, pk.pts, pk.digits, *heads,
           x, words, lev)
    return x, words.view(np.uint8)[:n * depth].reshape(n, depth), lev


@pytest.mark.parametrize("name", ["sierpinski", "fern", "k20", "dim3", "dim1"])
def test_points_kernel_equals_python_form_and_numpy_tables(name):
    w, depth = _worlds()[name]
    pk = ifs_kernels.packed(w, 0, depth)
    n, i0 = 1100, 37  # over two slices, from an offset column
    u = np.random.default_rng(0).random((len(pk.lengths), n + i0))
    u[:, i0] = 1 - 2.0**-53  # the largest uniform: last word of each table
    n_levels = min(4, depth)
    got = _run_points(ifs_kernels.points_kernel, pk, u, i0, n, w.dim, depth, n_levels)
    ref = _run_points(ifs_kernels.points_kernel.py_func, pk, u, i0, n, w.dim, depth, n_levels)
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_array_equal(a, b)
    lengths = tuple(int(v) for v in pk.lengths)
    codes = _numpy_codes(w, lengths, u[:, i0:])
    np.testing.assert_array_equal(got[0], ifs_tables.evaluate(w, 0, lengths, codes).T)
    digits = _numpy_digits(w.n_maps, lengths, codes)
    np.testing.assert_array_equal(got[1], digits)
    weights = w.n_maps ** np.arange(n_levels - 1, -1, -1)
    for l in range(1, n_levels + 1):
        np.testing.assert_array_equal(got[2][l - 1], digits[:, :l] @ weights[-l:])


def _raster(kernels, w, size, n, n_levels, soft_levels, keep_x, prefix):  # type: ignore[no-untyped-def]
    """Raster, finish and normalise kernels (or their Python forms) on one image."""
    raster, finish, normalise = kernels
    sc = ifs_render._Scratch(w, size, n, 12, n_levels, soft_levels, keep_x)
    sc.u[:] = np.random.default_rng(1).random(sc.u.shape)
    sc.reset()
    pk = ifs_kernels.packed(w, 0, 12)
    box = w.box[0, 0]
    head, mult, n_head = sc.heads
    raster(sc.u, pk.uniform, pk.sizes, pk.law, pk.aff, pk.pts, head, mult, n_head,
           float(box[0, 0]), float(box[0, 1]), size / float(box[1, 0] - box[0, 0]), size,
           pk.k, prefix, sc.state, sc.mdis, sc.soft_off, sc.hist, sc.xs)
    n_pix = size * size
    maps, overlap = np.empty((n_levels, n_pix), np.int16), np.empty(n_pix, bool)
    image = np.empty(n_pix, np.uint16)
    n_hit, amb = finish(sc.state, sc.mdis, pk.k, 65535, prefix, maps, overlap, image)
    soft = []
    for l, off in enumerate(sc.soft_off, start=1):
        out = np.empty((n_pix, w.n_maps**l), np.float32)
        normalise(sc.hist[off:off + n_pix * w.n_maps**l].reshape(n_pix, -1), sc.state, out)
        soft.append(out)
    return [sc.state, sc.mdis, sc.xs, maps, overlap, image, np.array([n_hit]), amb, *soft]


@pytest.mark.parametrize("n_levels,soft_levels", [(0, 0), (3, 2)])
def test_raster_kernels_equal_their_python_forms(n_levels, soft_levels):
    w = ifs.make_world(maps=OVERLAP, probabilities="uniform")
    fast = (ifs_kernels.raster_kernel, ifs_kernels.finish_kernel,
            ifs_kernels.normalise_kernel)
    slow = tuple(f.py_func for f in fast)
    prefix = ifs_render._prefix_table(2, n_levels)
    got = _raster(fast, w, 16, 1500, n_levels, soft_levels, True, prefix)
    for a, b in zip(got, _raster(slow, w, 16, 1500, n_levels, soft_levels, True, prefix),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    assert not n_levels or ((got[3] == -1).any() and (got[3] >= 0).any())
    # dividing level-L codes by K gives what the tabulated prefixes give
    divided = _raster(fast, w, 16, 1500, n_levels, soft_levels, True,
                      np.zeros((n_levels, 0), np.int64))
    for a, b in zip(divided, got, strict=True):
        np.testing.assert_array_equal(a, b)


def _numpy_image(w: ifs.World, seed: int, index: int, size: int, n_points: int, depth: int,
                 n_levels: int, soft_levels: int) -> dict[str, np.ndarray]:
    """Image ``index`` rasterised in numpy from its own uniforms (single-system world):
    hard labels by scatter-then-compare, soft labels by bincount."""
    gen = np.random.Generator(np.random.PCG64(ifs_render.image_seed(seed, index)))
    lengths = ifs_tables.chunk_lengths(w, depth)
    codes = _numpy_codes(w, lengths, gen.random((len(lengths), n_points)))
    x = ifs_tables.evaluate(w, 0, lengths, codes)
    digits = _numpy_digits(w.n_maps, lengths, codes).astype(np.int64)
    box = w.box[0, 0]
    scale = size / float(box[1, 0] - box[0, 0])
    col = np.clip(((x[0] - box[0, 0]) * scale).astype(np.intp), 0, size - 1)
    row = np.clip(((x[1] - box[0, 1]) * scale).astype(np.intp), 0, size - 1)
    pix = (size - 1 - row) * size + col
    n_pix, k = size * size, w.n_maps
    counts = np.bincount(pix, minlength=n_pix)
    out: dict[str, np.ndarray] = {"image": counts.astype(np.uint16)}
    for l in range(1, n_levels + 1):
        code = digits[:, :l] @ k ** np.arange(l - 1, -1, -1)
        lab = np.full(n_pix, -1, np.int64)
        lab[pix] = code
        lab[pix[lab[pix] != code]] = -1  # a pixel with two codes has a point disagreeing
        out[f"address{l}"] = lab
        if l <= soft_levels:
            h = np.bincount(pix * k**l + code, minlength=n_pix * k**l).reshape(n_pix, k**l)
            out[f"soft{l}"] = (h / np.maximum(counts, 1)[:, None]).astype(np.float32)
    out["x"] = x
    return out


@pytest.mark.parametrize("maps,n_levels", [(OVERLAP, 3), (None, 4)])
def test_images_equal_a_numpy_rasterisation(maps, n_levels):
    # the second world has K^L = 20^4 > PREFIX_TABLE: its labels are divided out
    w = (ifs.make_world(maps=maps, probabilities="uniform") if maps else
         ifs.make_world(n_maps=20, rng=2, probabilities="det"))
    size, n_points, depth = 24, 3000, 6
    s = ifs.sample(w, 2, rng=3, mode="images", image_size=size, n_points=n_points, depth=depth,
                   n_address_levels=n_levels, soft_levels=1)
    dens = ifs.sample(w, 2, rng=3, mode="images", image_size=size, n_points=n_points,
                      depth=depth, n_address_levels=1, soft_levels=0, value="density")
    for i in range(2):
        ref = _numpy_image(w, 3, i, size, n_points, depth, n_levels, 1)
        np.testing.assert_array_equal(s.x[i].ravel(), ref["image"])
        for l in range(1, n_levels + 1):
            np.testing.assert_array_equal(s.levels[l - 1][i].ravel(), ref[f"address{l}"])
        np.testing.assert_array_equal(s.aux["soft_address1"][i].reshape(size * size, -1),
                                      ref["soft1"])
        hit = ref["image"] > 0
        np.testing.assert_array_equal(s.aux["overlap"][i].ravel(),
                                      hit & (ref["address1"] < 0))
        assert s.aux["fill_rate"][i] == hit.mean()
        np.testing.assert_array_equal(dens.x[i], ifs_render.density(ref["x"], w.box[0, 0], size))
    if maps is not None:  # the overlap is exercised: hit pixels with two level-1 codes
        assert s.aux["overlap"].any()


def _numpy_box_counts(mask: np.ndarray) -> list[int]:
    out, m, s = [], mask != 0, 1
    while s <= mask.shape[0] // 4:
        out.append(int(m.sum()))
        if out[-1] == 0 or m.shape[0] % 2 or m.shape[1] % 2:
            break
        m = m[0::2, 0::2] | m[1::2, 0::2] | m[0::2, 1::2] | m[1::2, 1::2]
        s *= 2
    return out


@pytest.mark.parametrize("shape", [(64, 64), (48, 48), (20, 20), (8, 8), (32, 16), (3, 3)])
def test_box_counts_equal_or_pooling(shape):
    gen = np.random.default_rng(shape[0])
    for mask in (gen.random(shape) < 0.05, np.zeros(shape, bool),
                 (gen.integers(0, 3, size=(*shape, 2)) * (gen.random((*shape, 2)) < 0.1))
                 .astype(np.int32)[..., 0]):  # strided int32, like the pixel counts
        expected = _numpy_box_counts(mask)
        np.testing.assert_array_equal(ifs_kernels.box_counts(mask), expected)
        np.testing.assert_array_equal(ifs_kernels.box_counts.py_func(mask), expected)


NO_NUMBA = r"""
import sys
sys.modules["numba"] = None
import numpy as np
from generators import _jit, ifs
assert not _jit.HAVE_NUMBA
p = ifs.sample(ifs.make_world(system="fern"), 700, rng=1, depth=12)
fam = ifs.make_world(n_maps=3, n_systems=2, rng=0)
im = ifs.sample(fam, 2, rng=2, mode="images", image_size=16, n_points=600, depth=8,
                n_address_levels=2, soft_levels=1)
np.savez(sys.argv[1], px=p.x, pa=p.aux["address"], pl=p.levels[2], ix=im.x,
         il=im.levels[2], isoft=im.aux["soft_address1"], ibox=im.aux["box_dimension"])
"""


def test_same_bytes_with_numba_blocked(tmp_path: Path):
    out = tmp_path / "plain.npz"
    run = subprocess.run([sys.executable, "-c", NO_NUMBA, str(out)], capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    plain = np.load(out)
    p = ifs.sample(ifs.make_world(system="fern"), 700, rng=1, depth=12)
    fam = ifs.make_world(n_maps=3, n_systems=2, rng=0)
    im = ifs.sample(fam, 2, rng=2, mode="images", image_size=16, n_points=600, depth=8,
                    n_address_levels=2, soft_levels=1)
    for key, arr in {"px": p.x, "pa": p.aux["address"], "pl": p.levels[2], "ix": im.x,
                     "il": im.levels[2], "isoft": im.aux["soft_address1"],
                     "ibox": im.aux["box_dimension"]}.items():
        assert plain[key].dtype == arr.dtype and plain[key].tobytes() == arr.tobytes(), key
