"""Iterated function systems: fractal points and images with exact addresses.

A world holds ``n_systems`` classes of ``n_instances`` systems each, every system
``K`` contractive affine maps ``w_i(x) = A_i x + b_i`` with probabilities ``p_i``
(see :mod:`generators.ifs.maps` and ``shared/docs/background.md`` §2.4).

**Addresses.** Fixed-depth sampling draws ``a_1 … a_D`` i.i.d. from ``p`` and
returns ``x = w_{a_1} ∘ … ∘ w_{a_D}(x_0)``, outermost map first, with ``x_0`` the
fixed point of map 0: ``x_0`` lies on the attractor, so every sample lies *on* the
attractor, inside the cylinder ``w_{a_1…a_ℓ}(attractor)`` of each of its prefixes,
and its infinite address is ``a_1 … a_D 0 0 0 …``. The cylinder of a prefix has
probability ``Π_j p_{a_j}`` exactly. Level ``ℓ`` is the prefix code
``Σ_{j<=ℓ} a_j K^{ℓ-j}`` (``K^ℓ`` values); levels ``system`` (class) and
``instance`` (a global id ``system * n_instances + j``) sit above them when there is
more than one. The chaos game (:func:`chaos_game`) gives the same addresses along
Markov chains.

**Speed.** ``D`` digits are cut into chunks of at most ``m`` digits
(``K^m <= TABLE_SIZE``); each chunk's ``K^m`` composed maps (and, for the innermost
chunk, the image points of ``x_0``) are tabulated once per system, so a point costs
one uniform and one table gather per chunk instead of ``D`` affine maps
(:mod:`generators.ifs.tables`). The per-point loop (word draw, composition, digits,
prefix codes) is compiled (:mod:`generators.ifs.kernels`); the uniforms are drawn by
numpy from the block generators, so the bytes do not depend on numba.

Modes of :func:`sample`: ``"points"`` gives ``x`` (n, d) float64 and every digit
in ``aux["address"]`` (n, D); ``"images"`` gives ``x`` (n, H, W) and per-pixel
address maps (see :mod:`generators.ifs.render`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from generators import _rng
from generators.base import HierarchicalSample, concat
from generators.ifs import kernels as kernels_
from generators.ifs import maps as maps_
from generators.ifs import tables as tables_
from generators.ifs.tables import (  # re-exported
    alias_table as alias_table,
)
from generators.ifs.tables import chunk_lengths
from generators.ifs.world import (  # re-exported
    MAX_AUTO_DEPTH as MAX_AUTO_DEPTH,
)
from generators.ifs.world import (  # re-exported
    MAX_DEPTH as MAX_DEPTH,
)
from generators.ifs.world import (  # re-exported
    World as World,
)
from generators.ifs.world import _check_depth, _check_int, _check_levels, _id_levels
from generators.ifs.world import (  # re-exported
    auto_depth as auto_depth,
)
from generators.ifs.world import (  # re-exported
    level_names as level_names,
)
from generators.ifs.world import (  # re-exported
    min_uint_dtype as min_uint_dtype,
)

NAME = "ifs"
MODES = ("points", "images")


@dataclasses.dataclass(frozen=True)
class Config:
    """Parameters of an IFS dataset (``make_world`` and ``sample`` keywords)."""

    n_maps: int | None = None
    dim: int = 2
    n_systems: int = 1
    n_instances: int = 1
    sigma: float | None = None
    system: str | None = None
    maps: tuple[tuple[float, ...], ...] | None = None
    probabilities: str | tuple[float, ...] | None = None
    jitter: float = 0.0
    mode: str = "points"
    depth: int | None = None
    n_address_levels: int = 3
    image_size: int = 128
    n_points: int = 100_000
    value: str = "count"
    soft_levels: int = 1
    colour: bool = False


def make_world(*, n_maps: int | None = None, dim: int = 2, n_systems: int = 1,
               n_instances: int = 1, sigma: float | None = None, system: str | None = None,
               maps: Sequence[Sequence[float]] | None = None,
               probabilities: str | Sequence[float] | None = None, jitter: float = 0.0,
               rng: _rng.RNGLike = None) -> World:
    """Build the systems.

    Exactly one source of maps: ``system`` (a classic name, see
    :data:`generators.ifs.maps.CLASSIC_DIMENSIONS`), ``maps`` (rows ``[A row-major,
    b]``) or neither (``n_systems`` random σ-factor systems of ``n_maps`` maps each,
    σ-factor ``sigma`` or drawn in Anderson & Farrell's range). ``probabilities``:
    ``"det"`` (``∝ |det A_i|``, default for random systems), ``"uniform"`` or a list
    (default for classics: their own, uniform except the fern). ``n_instances > 1``
    adds jittered copies of each system (every coefficient + ``N(0, jitter²)``,
    contractivity re-checked); instance 0 of each class is the unjittered system.
    """
    dim = _check_int("dim", dim, 1, 8)
    n_systems = _check_int("n_systems", n_systems, 1)
    n_instances = _check_int("n_instances", n_instances, 1)
    jitter = float(jitter)
    if not math.isfinite(jitter) or jitter < 0:
        raise ValueError(f"jitter={jitter} must be a non-negative number")
    if n_instances > 1 and jitter == 0:
        raise ValueError(f"n_instances={n_instances} needs jitter > 0 (e.g. 0.05), "
                         "else every instance is the same system")
    if system is not None and maps is not None:
        raise ValueError("give either system= (a classic name) or maps=, not both")
    gen = _rng.as_generator(rng)
    boxes: list[np.ndarray | None] = []
    if system is not None or maps is not None:
        if n_systems != 1:
            raise ValueError(f"n_systems={n_systems}: a named or user system is one class; "
                             "use n_instances with jitter for a family")
        if sigma is not None:
            raise ValueError(f"sigma={sigma} applies to random systems only; omit it with "
                             "system= or maps=")
        if system is not None:
            if dim != 2:
                raise ValueError(f"system={system!r} is 2-dimensional; got dim={dim}")
            lin, off, p_own, box = maps_.classic_system(system)
            kind = system.lower()
        else:
            lin, off = maps_.parse_maps(maps, dim)  # type: ignore[arg-type]
            p_own, box, kind = np.full(len(lin), 1 / len(lin)), None, "user"
        if n_maps is not None and n_maps != len(lin):
            raise ValueError(f"n_maps={n_maps} but the system has {len(lin)} maps; omit n_maps")
        probs = p_own if probabilities is None else maps_.map_probabilities(lin, probabilities)
        maps_.check_maps(lin, off, probs)
        systems = [(lin, off, probs)]
        boxes.append(box)
    else:
        k = _check_int("n_maps", 3 if n_maps is None else n_maps, 2, 255)
        lo, hi = maps_.sigma_factor_range(k, dim)
        cap = maps_.MAX_SINGULAR * k * dim * (dim + 1) / 2
        if sigma is not None and not 0 < float(sigma) <= cap:
            raise ValueError(f"sigma={sigma} must be in (0, {cap:.4g}] for n_maps={k}, dim={dim} "
                             f"(Anderson & Farrell recommend [{lo:.3g}, {hi:.3g}])")
        systems = []
        for _ in range(n_systems):
            lin, off = maps_.random_system(gen, k, dim, sigma)
            probs = maps_.map_probabilities(lin, "det" if probabilities is None
                                            else probabilities)
            maps_.check_maps(lin, off, probs)
            systems.append((lin, off, probs))
            boxes.append(None)
        kind = "random"
    lin_all, off_all, p_all, box_all = [], [], [], []
    for (lin, off, probs), box in zip(systems, boxes, strict=True):
        for j in range(n_instances):
            if j == 0:
                l2, o2, p2, b2 = lin, off, probs, box
            else:
                l2, o2 = maps_.jitter_system(gen, lin, off, jitter)
                # |det|-weighted systems re-weight by the jittered maps; others keep p
                by_det = probabilities == "det" or (probabilities is None and kind == "random")
                rule: str | Sequence[float] = "det" if by_det else probs.tolist()
                p2, b2 = maps_.map_probabilities(l2, rule), None
                maps_.check_maps(l2, o2, p2)
            lin_all.append(l2)
            off_all.append(o2)
            p_all.append(p2)
            box_all.append(maps_.attractor_box(l2, o2) if b2 is None else b2)
    k = len(lin_all[0])
    shape = (n_systems, n_instances, k)
    return World(kind=kind, dim=dim, n_maps=k, n_systems=n_systems, n_instances=n_instances,
                 linear=np.stack(lin_all).reshape(*shape, dim, dim),
                 offset=np.stack(off_all).reshape(*shape, dim),
                 probs=np.stack(p_all).reshape(shape),
                 box=np.stack(box_all).reshape(n_systems, n_instances, 2, dim),
                 sigma=None if sigma is None else float(sigma), jitter=jitter)


def _meta(world: World, ss: np.random.SeedSequence | None, **kw: Any) -> dict[str, Any]:
    from generators.rhm import _package_version

    return {"generator": NAME, "params": world.params(), **kw,
            "version": _package_version(), "block_size": _rng.BLOCK_SIZE,
            "seed_entropy": None if ss is None else _rng.seed_entropy(ss),
            "address_layout": "level address<l> = sum_{j<=l} a_j K^(l-j), a_1 the outermost "
                              "map (points: aux['address'][:, j-1] = a_j; images: per pixel, "
                              "-1 where empty or several codes)"}


# ----------------------------------------------------------------------- points

def _run_points(pk: kernels_.Packed, u: np.ndarray, i0: int, x: np.ndarray,
                address: np.ndarray, lev: np.ndarray) -> None:
    """:func:`generators.ifs.kernels.points_kernel` into ``x`` (n, d), ``address``
    (n, D) uint8 (C-contiguous) and ``lev`` (L, >= n) int64."""
    flat = address.reshape(-1)  # a view: address is C-contiguous
    direct = flat.size % 8 == 0 and flat.ctypes.data % 8 == 0  # whole aligned words
    words = flat.view(np.uint64) if direct else np.empty((flat.size + 7) // 8, np.uint64)
    head, mult, n_head = kernels_.level_heads(pk.k, tuple(pk.lengths.tolist()),
                                              tuple(range(1, len(lev) + 1)))
    kernels_.points_kernel(u, i0, pk.uniform, pk.lengths, pk.sizes, pk.law, pk.aff, pk.pts,
                           pk.digits, head, mult, n_head, x, words, lev)
    if not direct:
        flat[:] = words.view(np.uint8)[:flat.size]


def _points_chunk(world: World, ss: np.random.SeedSequence, start: int, stop: int,
                  depth: int, n_levels: int, meta: dict) -> HierarchicalSample:
    """Samples ``start..stop-1``, block by block into preallocated arrays. Block ``b``
    draws its instance ids (when more than one), then uniforms (n_chunks, BLOCK_SIZE),
    always whole, from its own generator; rows ``lo:hi`` of it are used."""
    n, k, bs = stop - start, world.n_maps, _rng.BLOCK_SIZE
    x = np.empty((n, world.dim))
    address = np.empty((n, depth), dtype=np.uint8)
    levels = _id_levels(world, np.zeros(n, dtype=np.int64)) + [
        np.empty(n, min_uint_dtype(k ** (l + 1) - 1)) for l in range(n_levels)]
    u = np.empty((len(chunk_lengths(world, depth)), bs))
    lev = np.empty((n_levels, bs), np.int64)
    at = 0
    for b, lo, hi in _rng.blocks(start, stop):
        gen = _rng.block_generator(ss, b)
        inst = (gen.integers(0, world.n_classes, size=bs) if world.n_classes > 1
                else np.zeros(bs, dtype=np.int64))[lo:hi]
        gen.random(out=u)  # the same stream as gen.random((n_chunks, bs))
        rows = slice(at, at + hi - lo)
        if world.n_classes == 1:
            _run_points(kernels_.packed(world, 0, depth), u, lo, x[rows], address[rows], lev)
        else:
            for q in np.unique(inst):
                sel = np.flatnonzero(inst == q)
                xq, aq = np.empty((len(sel), world.dim)), np.empty((len(sel), depth), np.uint8)
                lq = np.empty((n_levels, len(sel)), np.int64)
                _run_points(kernels_.packed(world, int(q), depth), u[:, lo + sel], 0, xq, aq,
                            lq)
                x[at + sel], address[at + sel], lev[:, sel] = xq, aq, lq
        for i, lv in enumerate([*_id_levels(world, inst), *lev[:, :hi - lo]]):
            levels[i][rows] = lv
        at += hi - lo
    return HierarchicalSample(x=x, levels=tuple(levels),
                              level_names=level_names(world, n_levels), world=world, meta=meta,
                              aux={"address": address})


def points(world: World, n: int, *, depth: int, instance: int = 0,
           rng: _rng.RNGLike = None) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-depth points of one system: ``(x (n, d), address (n, depth) uint8)``."""
    n = _check_int("n", n, 0)
    depth = _check_int("depth", depth, 1, MAX_DEPTH)
    instance = _check_int("instance", instance, 0, world.n_classes - 1)
    u = _rng.as_generator(rng).random((len(chunk_lengths(world, depth)), n))  # (n_chunks, n)
    x, address = np.empty((n, world.dim)), np.empty((n, depth), np.uint8)
    _run_points(kernels_.packed(world, instance, depth), u, 0, x, address,
                np.empty((0, n), np.int64))
    return x, address


def cylinder_points(world: World, depth: int, *, instance: int = 0) -> np.ndarray:
    """Every depth-``depth`` word's point ``w_{a_1…a_D}(x_0)`` (K^D, d), in code order:
    a deterministic sample of the attractor with one point per cylinder."""
    depth = _check_int("depth", depth, 1, MAX_DEPTH)
    total = world.n_maps**depth
    if total > 2**24:
        raise ValueError(f"K^depth = {total} points is too many to enumerate; lower depth")
    lengths = chunk_lengths(world, depth)
    rest = np.arange(total, dtype=np.int64)
    codes = np.empty((len(lengths), total), dtype=np.int64)
    for i in range(len(lengths) - 1, -1, -1):
        rest, codes[i] = np.divmod(rest, world.n_maps ** lengths[i])
    return tables_.evaluate(world, instance, lengths, codes).T


def chaos_game(world: World, n_chains: int, n_steps: int, *, depth: int = 8,
               instance: int = 0, rng: _rng.RNGLike = None) -> tuple[np.ndarray, np.ndarray]:
    """Run ``n_chains`` chaos games for ``n_steps`` steps, vectorised over chains.

    ``x_t = w_{i_t}(x_{t-1})`` from ``x_0`` = fixed point of map 0, so
    ``x_t = w_{i_t} ∘ … ∘ w_{i_1} ∘ w_0^∞(x_0)``: its address, outermost first, is
    ``i_t, i_{t-1}, …``, padded with map 0 before the start (no burn-in needed).
    Returns points (n_chains, n_steps, d) and the last ``depth`` choices
    (n_chains, n_steps, depth) uint8.
    """
    n_chains = _check_int("n_chains", n_chains, 1)
    n_steps = _check_int("n_steps", n_steps, 1)
    depth = _check_int("depth", depth, 1, MAX_DEPTH)
    instance = _check_int("instance", instance, 0, world.n_classes - 1)
    lin, off, p = world.system_maps(instance)
    gen = _rng.as_generator(rng)
    cdf = np.cumsum(p)
    choice = np.minimum(np.searchsorted(cdf / cdf[-1], gen.random((n_chains, n_steps)),
                                        side="right"), world.n_maps - 1).astype(np.uint8)
    lin_c = np.ascontiguousarray(lin.transpose(1, 2, 0))  # (d, d, K)
    x = np.repeat(maps_.fixed_points(lin[:1], off[:1]).T, n_chains, axis=1)  # (d, n_chains)
    out = np.empty((n_chains, n_steps, world.dim))
    for t in range(n_steps):
        c = choice[:, t]
        new = off.T[:, c].copy()  # (d, n_chains)
        for r in range(world.dim):
            for s in range(world.dim):
                new[r] += lin_c[r, s][c] * x[s]
        x = new
        out[:, t] = x.T
    padded = np.concatenate([np.zeros((n_chains, depth - 1), np.uint8), choice], axis=1)
    window = np.lib.stride_tricks.sliding_window_view(padded, depth, axis=1)
    return out, np.ascontiguousarray(window[..., ::-1])  # window[:, t] = choices t-D+1 .. t


# ----------------------------------------------------------------------- protocol

def iter_chunks(world: World, n_samples: int, *, rng: _rng.RNGLike = None,
                chunk_size: int = _rng.BLOCK_SIZE, mode: str = "points",
                depth: int | None = None, n_address_levels: int = 3, image_size: int = 128,
                n_points: int = 100_000, value: str = "count", soft_levels: int = 1,
                colour: bool = False) -> Iterator[HierarchicalSample]:
    """``sample(world, n_samples, rng=rng, ...)`` in consecutive chunks of at most
    ``chunk_size`` samples; the chunks concatenate to exactly that draw."""
    n_samples = _check_int("n_samples", n_samples, 0)
    chunk_size = _check_int("chunk_size", chunk_size, 1)
    ss = _rng.as_seed_sequence(rng)
    if mode == "images":
        from generators.ifs import render as ifs_render

        kw = dict(image_size=image_size, n_points=n_points, depth=depth,
                  n_address_levels=n_address_levels, value=value, soft_levels=soft_levels)
        d = ifs_render.check_image_args(world, **kw)  # type: ignore[arg-type]
        meta = _meta(world, ss, mode=mode, depth=d, image_size=image_size,
                     n_points=n_points, value=value, colour=bool(colour),
                     image_seeds="image i uses SeedSequence(entropy, spawn_key + "
                                 f"({ifs_render.IMAGE_KEY}, i))")
        yield from ifs_render.iter_image_chunks(world, n_samples, ss, chunk_size, meta,
                                                colour=bool(colour), **kw)
        return
    if mode != "points":
        raise ValueError(f"mode={mode!r} must be one of {MODES}")
    d = _check_depth(world, depth, _check_int("image_size", image_size, 1))
    n_levels = _check_levels(world, n_address_levels, d)
    meta = _meta(world, ss, mode=mode, depth=d)
    for start in range(0, n_samples, chunk_size):
        stop = min(start + chunk_size, n_samples)
        yield _points_chunk(world, ss, start, stop, d, n_levels, meta)


def sample(world: World, n_samples: int, *, rng: _rng.RNGLike = None, mode: str = "points",
           depth: int | None = None, n_address_levels: int = 3, image_size: int = 128,
           n_points: int = 100_000, value: str = "count", soft_levels: int = 1,
           colour: bool = False) -> HierarchicalSample:
    """Draw ``n_samples`` points (``mode="points"``) or images (``"images"``).

    ``depth`` defaults to :func:`auto_depth` at ``image_size`` pixels. Points:
    ``x`` (n, d) float64, levels (``system``, ``instance``,) ``address1..L`` (n,),
    ``aux["address"]`` (n, D) uint8. Images: see
    :func:`generators.ifs.render.sample_images` (``n_points`` points per image,
    ``value`` "count" | "binary" | "density", soft histograms for the first
    ``soft_levels`` levels; ``colour=True``: (n, H, W, 3) float32 RGB, a random
    foreground and background colour per image, the foreground weighted by the
    image's intensity).
    """
    kw = dict(mode=mode, depth=depth, n_address_levels=n_address_levels,
              image_size=image_size, n_points=n_points, value=value, soft_levels=soft_levels,
              colour=colour)
    chunks = list(iter_chunks(world, n_samples, rng=rng, chunk_size=max(n_samples, 1),
                              **kw))  # type: ignore[arg-type]
    if chunks:
        return concat(chunks)
    ss = _rng.as_seed_sequence(rng)
    if mode == "images":
        from generators.ifs import render as ifs_render

        d = ifs_render.check_image_args(world, image_size, n_points, depth, n_address_levels,
                                        value, soft_levels)
        return ifs_render.sample_images(world, 0, 0, ss, _meta(world, ss, mode=mode, depth=d),
                                        image_size=image_size, n_points=n_points, depth=d,
                                        n_address_levels=n_address_levels, value=value,
                                        soft_levels=soft_levels, colour=colour)
    d = _check_depth(world, depth, image_size)
    return _points_chunk(world, ss, 0, 0, d, _check_levels(world, n_address_levels, d),
                         _meta(world, ss, mode=mode, depth=d))
