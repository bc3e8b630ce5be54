"""IFS images: rasterised points with per-pixel address maps at every level.

Image ``i`` of a draw is rendered from its own seed (``spawn_key + (IMAGE_KEY, i)``
of the draw's SeedSequence), so it is the same bytes whichever process, chunk or
worker renders it. Its system is drawn uniformly among all instances; its
``n_points`` points come from fixed-depth sampling (:mod:`generators.ifs`) and are
binned into ``image_size`` pixels over the system's square box (y up).

Per pixel and address level ``ℓ`` the *hard* label is the level-ℓ prefix code when
every point in the pixel shares it, ``-1`` when the pixel is empty or holds several
codes (the pieces overlap within the pixel). The *soft* label is the histogram of
codes among the pixel's points, normalised to sum 1 (zeros in empty pixels). The
overlap mask marks hit pixels that are ambiguous at level 1.

One pass over the points (:func:`generators.ifs.kernels.raster_kernel`) keeps, per
pixel, the count, the level-``L`` code of its first point and the shallowest level at
which a later point's code differed: level-``ℓ`` codes are prefixes of level-``L``
codes, so a pixel is ambiguous at level ``ℓ`` exactly when that level is ``ℓ`` or
shallower. No per-point arrays beyond the uniforms are built.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from generators import _rng
from generators.base import HierarchicalSample
from generators.ifs import kernels
from generators.ifs import tables as tables_
from generators.ifs import world as ifs_

#: spawn-key tag of per-image seeds (distinct from the point blocks' 0xB10C)
IMAGE_KEY = 0x1A6E
#: images per chunk (the io chunk size counts samples; an image is ~100 kB)
IMAGE_CHUNK = 256
VALUES = ("count", "binary", "density")
#: random backgrounds are drawn in [0, BACKGROUND_SCALE)^3 (dark)
BACKGROUND_SCALE = 0.5
#: counts saturate here (uint16)
MAX_COUNT = np.iinfo(np.uint16).max
#: largest K^L whose level-prefix table is built (else labels are divided out)
PREFIX_TABLE = 1 << 16
_IMAGE_DTYPE = {"count": np.uint16, "binary": np.uint8, "density": np.float32}


def _min_int_dtype(max_value: int) -> np.dtype:
    """Smallest signed dtype holding ``-1..max_value``."""
    for dt in (np.int8, np.int16, np.int32, np.int64):
        if max_value <= np.iinfo(dt).max:
            return np.dtype(dt)
    raise ValueError(f"{max_value} does not fit in int64")


@dataclasses.dataclass(frozen=True, eq=False)
class Raster:
    """One rendered image and its labels (``H = W = image_size``, ``L`` levels)."""

    image: np.ndarray  # (H, W): uint16 counts, uint8 0/1 or float32 density
    address_maps: tuple[np.ndarray, ...]  # L x (H, W) int64, -1 empty/ambiguous
    soft: tuple[np.ndarray, ...]  # soft_levels x (H, W, K^l) float32
    overlap: np.ndarray  # (H, W) bool
    fill_rate: float  # fraction of pixels hit
    ambiguous: np.ndarray  # (L,) fraction of hit pixels ambiguous at each level
    box_dimension: float  # box-counting slope of the hit mask


def density(x: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Anti-aliased image (size, size) float32: bilinear splatting of each point onto
    its 4 nearest pixel centres, scaled to maximum 1."""
    scale = size / float(box[1, 0] - box[0, 0])
    fx = (x[0] - box[0, 0]) * scale - 0.5
    fy = (x[1] - box[0, 1]) * scale - 0.5
    ix, iy = np.floor(fx), np.floor(fy)
    wx, wy = fx - ix, fy - iy
    out = np.zeros(size * size)
    for dx, wxx in ((0, 1 - wx), (1, wx)):
        for dy, wyy in ((0, 1 - wy), (1, wy)):
            c = np.clip(ix + dx, 0, size - 1).astype(np.intp)
            r = size - 1 - np.clip(iy + dy, 0, size - 1).astype(np.intp)
            out += np.bincount(r * size + c, weights=wxx * wyy, minlength=size * size)
    peak = out.max()
    return (out / peak if peak > 0 else out).reshape(size, size).astype(np.float32)


def mask_box_dimension(mask: np.ndarray) -> float:
    """Slope of ``log N(s)`` against ``log 1/s`` over box sides ``s = 1, 2, 4, …,
    size/4`` pixels (boxes holding a nonzero of ``mask`` (H, W)); 0 for an empty mask.
    Boxes of side ``2s`` are the OR of 2x2 boxes of side ``s``
    (:func:`generators.ifs.kernels.box_counts`)."""
    counts = kernels.box_counts(mask)
    if len(counts) and counts[-1] == 0:
        return 0.0
    if len(counts) < 2:
        return float("nan")
    lx, ly = np.log(2.0 ** np.arange(len(counts))), np.log(counts)
    lx -= lx.mean()  # least-squares slope in closed form (polyfit costs 0.4 ms)
    return float(-(lx @ (ly - ly.mean())) / (lx @ lx))


def image_seed(seed: _rng.RNGLike, index: int) -> np.random.SeedSequence:
    """The SeedSequence of image ``index`` of the draw seeded by ``seed``."""
    ss = _rng.as_seed_sequence(seed)
    return np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, IMAGE_KEY, int(index)))


def check_image_args(world: ifs_.World, image_size: int, n_points: int, depth: int | None,
                     n_address_levels: int, value: str, soft_levels: int) -> int:
    """Validate image parameters; returns the depth to use."""
    if world.dim != 2:
        raise ValueError(f"images need dim=2 systems; this world has dim={world.dim} "
                         "(use mode='points')")
    ifs_._check_int("image_size", image_size, 4, 8192)
    ifs_._check_int("n_points", n_points, 1)
    if value not in VALUES:
        raise ValueError(f"value={value!r} must be one of {VALUES}")
    d = ifs_._check_depth(world, depth, image_size)
    n_levels = ifs_._check_levels(world, n_address_levels, d)
    soft_levels = ifs_._check_int("soft_levels", soft_levels, 0, n_levels)
    if soft_levels and world.n_maps**soft_levels * image_size**2 > 2**28:
        raise ValueError(f"soft_levels={soft_levels}: K^l * image_size^2 = "
                         f"{world.n_maps**soft_levels * image_size**2} floats per image is "
                         "too large; lower soft_levels")
    return d


@functools.lru_cache(maxsize=64)
def _prefix_table(k: int, n_levels: int) -> np.ndarray:
    """Level codes from level-L codes, ``c // K^(L-l)`` (L, K^L) int64 for ``l = 1..L``;
    no columns when ``K^L > PREFIX_TABLE`` (the kernel then divides)."""
    top = k**n_levels
    if top > PREFIX_TABLE:
        return np.zeros((n_levels, 0), np.int64)
    return np.arange(top, dtype=np.int64) // k ** np.arange(n_levels - 1, -1, -1)[:, None]


class _Scratch:
    """Per-pixel state of one image, reused across the images of a draw: uniforms
    ``u`` (C, n_points); ``state`` (H*W, 2) the count and the level-L code of the first
    point; ``mdis`` (H*W,) the shallowest disagreeing level; the soft histograms of
    levels ``1..soft_levels`` stacked in ``hist``; ``xs`` (2, n_points) the points
    (density images only)."""

    def __init__(self, world: ifs_.World, size: int, n_points: int, depth: int,
                 n_levels: int, soft_levels: int, keep_x: bool) -> None:
        n_pix, k = size * size, world.n_maps
        lengths = tables_.chunk_lengths(world, depth)
        self.u = np.empty((len(lengths), n_points))
        wide = np.int32 if max(n_points, k**n_levels) < 2**31 else np.int64
        self.state = np.empty((n_pix, 2), wide)
        self.mdis = np.empty(n_pix, np.int8)  # levels <= MAX_DEPTH = 64 < 127
        sizes = [n_pix * k**l for l in range(1, soft_levels + 1)]
        self.soft_off = np.cumsum([0, *sizes[:-1]]).astype(np.int64)[:soft_levels]
        self.hist = np.empty(sum(sizes), np.int32 if n_points < 2**31 else np.int64)
        self.xs = np.empty((2, n_points if keep_x else 0))
        self.heads = kernels.level_heads(k, lengths, (n_levels, *range(1, soft_levels + 1)))
        self.prefix = _prefix_table(k, n_levels)
        self.n_levels = n_levels

    def reset(self) -> None:
        self.state.fill(0)
        self.mdis.fill(self.n_levels + 1)
        self.hist.fill(0)


def _draw(world: ifs_.World, index: int, ss: np.random.SeedSequence, size: int, depth: int,
          value: str, scratch: _Scratch, maps: np.ndarray, overlap: np.ndarray,
          image: np.ndarray, soft: Sequence[np.ndarray]
          ) -> tuple[int, np.random.Generator, float, np.ndarray, float]:
    """Render image ``index`` into ``maps`` (L, H*W), ``overlap`` (H*W,), ``image``
    (H*W,) uint16 counts or uint8 0/1 (unused for density) and ``soft[l-1]``
    (H*W, K^l); returns ``(instance, generator, fill_rate, ambiguous, box_dim)``,
    the generator positioned after the points' uniforms."""
    gen = np.random.Generator(np.random.PCG64(image_seed(ss, index)))
    q = int(gen.integers(0, world.n_classes)) if world.n_classes > 1 else 0
    pk = kernels.packed(world, q, depth)
    sc = scratch
    gen.random(out=sc.u)  # the same stream as gen.random((C, n_points))
    box = world.instance_box(q)
    scale = size / float(box[1, 0] - box[0, 0])
    sc.reset()
    head, mult, n_head = sc.heads
    kernels.raster_kernel(sc.u, pk.uniform, pk.sizes, pk.law, pk.aff, pk.pts, head, mult,
                          n_head, float(box[0, 0]), float(box[0, 1]), scale, size, pk.k,
                          sc.prefix, sc.state, sc.mdis, sc.soft_off, sc.hist, sc.xs)
    n_hit, amb = kernels.finish_kernel(sc.state, sc.mdis, pk.k,
                                       MAX_COUNT if value == "count" else 1, sc.prefix,
                                       maps, overlap, image)
    n_pix, k = size * size, world.n_maps
    for l, (off, out) in enumerate(zip(sc.soft_off, soft, strict=True), start=1):
        kernels.normalise_kernel(sc.hist[off:off + n_pix * k**l].reshape(n_pix, k**l),
                                 sc.state, out)
    if value == "density":
        image[...] = density(sc.xs, box, size).ravel()
    return (q, gen, n_hit / n_pix, amb / max(n_hit, 1),
            mask_box_dimension(sc.state[:, 0].reshape(size, size)))


def render(world: ifs_.World, index: int, seed: _rng.RNGLike, *, image_size: int = 128,
           n_points: int = 100_000, depth: int | None = None, n_address_levels: int = 3,
           value: str = "count", soft_levels: int = 1,
           colour: bool = False) -> tuple[int, Raster]:
    """Render image ``index`` of the draw seeded by ``seed``: ``(instance, raster)``.
    Depends only on ``(world, index, seed)`` and the keywords; ``colour`` draws its
    colours after the points, so the labels are the same with and without it."""
    d = check_image_args(world, image_size, n_points, depth, n_address_levels, value,
                         soft_levels)
    size, n_pix, k = image_size, image_size**2, world.n_maps
    scratch = _Scratch(world, size, n_points, d, n_address_levels, soft_levels,
                       value == "density")
    maps = np.empty((n_address_levels, n_pix), np.int64)
    overlap = np.empty(n_pix, bool)
    image = np.empty(n_pix, _IMAGE_DTYPE[value])
    soft = [np.empty((size, size, k**l), np.float32) for l in range(1, soft_levels + 1)]
    q, gen, fill, amb, bdim = _draw(world, index, _rng.as_seed_sequence(seed), size, d, value,
                                    scratch, maps, overlap, image,
                                    [s.reshape(n_pix, -1) for s in soft])
    img = image.reshape(size, size)
    return q, Raster(image=colourise(img, gen) if colour else img,
                     address_maps=tuple(m.reshape(size, size) for m in maps),
                     soft=tuple(soft), overlap=overlap.reshape(size, size), fill_rate=fill,
                     ambiguous=amb, box_dimension=bdim)


def colourise(image: np.ndarray, gen: np.random.Generator) -> np.ndarray:
    """RGB (H, W, 3) float32 ``bg + (fg - bg) * t``: ``t`` in [0, 1] is the image's
    intensity (``log(1 + count) / log(1 + max count)`` for counts, else the value),
    ``fg``, ``bg`` uniform random colours, the background darkened by
    ``BACKGROUND_SCALE`` so that the fractal stands out."""
    t: np.ndarray = image.astype(np.float32)
    if image.dtype == np.uint16:
        t = np.log1p(t) / max(float(np.log1p(t.max())), 1e-12)
    fg = gen.random(3).astype(np.float32)
    bg = (BACKGROUND_SCALE * gen.random(3)).astype(np.float32)
    return (bg + (fg - bg) * t[..., None]).astype(np.float32)


def sample_images(world: ifs_.World, start: int, stop: int, ss: np.random.SeedSequence,
                  meta: dict[str, Any], *, image_size: int, n_points: int, depth: int | None,
                  n_address_levels: int, value: str, soft_levels: int,
                  colour: bool = False) -> HierarchicalSample:
    """Images ``start..stop-1`` of the draw seeded by ``ss`` as one sample (each equal
    to :func:`render` of its index): ``x`` (n, H, W) (or (n, H, W, 3) with ``colour``),
    levels ``system``/``instance`` (n,) when more than one, then ``address<l>``
    (n, H, W); aux ``overlap`` (n, H, W), ``soft_address<l>`` (n, H, W, K^l),
    ``fill_rate`` (n,), ``ambiguous`` (n, L), ``box_dimension`` (n,)."""
    d = check_image_args(world, image_size, n_points, depth, n_address_levels, value,
                         soft_levels)
    n, size, k, n_levels = stop - start, image_size, world.n_maps, n_address_levels
    n_pix = size * size
    scratch = _Scratch(world, size, n_points, d, n_levels, soft_levels, value == "density")
    deep = _min_int_dtype(k**n_levels - 1)  # every level's labels fit the deepest's dtype
    maps = np.empty((n_levels, n_pix), deep)
    levels_out = [np.empty((n, size, size), _min_int_dtype(k**l - 1))
                  for l in range(1, n_levels + 1)]
    grey = np.empty((n, size, size), _IMAGE_DTYPE[value])
    x = np.empty((n, size, size, 3), np.float32) if colour else grey
    overlap = np.empty((n, size, size), bool)
    soft = [np.empty((n, size, size, k**l), np.float32) for l in range(1, soft_levels + 1)]
    inst = np.zeros(n, dtype=np.int64)
    fill, box_dim, amb = np.empty(n), np.empty(n), np.empty((n, n_levels))
    for i in range(n):
        inst[i], gen, fill[i], amb[i], box_dim[i] = _draw(
            world, start + i, ss, size, d, value, scratch, maps, overlap[i].reshape(n_pix),
            grey[i].reshape(n_pix), [s[i].reshape(n_pix, -1) for s in soft])
        for l in range(n_levels):
            levels_out[l][i] = maps[l].reshape(size, size)
        if colour:
            x[i] = colourise(grey[i], gen)
    levels = ifs_._id_levels(world, inst) + levels_out
    aux: dict[str, np.ndarray] = {"overlap": overlap, "fill_rate": fill, "ambiguous": amb,
                                  "box_dimension": box_dim}
    for l, s in enumerate(soft, start=1):
        aux[f"soft_address{l}"] = s
    return HierarchicalSample(x=x, levels=tuple(levels),
                              level_names=ifs_.level_names(world, n_levels), world=world,
                              meta=meta, aux=aux)


def iter_image_chunks(world: ifs_.World, n_samples: int, ss: np.random.SeedSequence,
                      chunk_size: int, meta: dict[str, Any],
                      **kw: Any) -> Iterator[HierarchicalSample]:
    """Consecutive image chunks of at most ``min(chunk_size, IMAGE_CHUNK)`` images."""
    step = min(chunk_size, IMAGE_CHUNK)
    for start in range(0, n_samples, step):
        yield sample_images(world, start, min(start + step, n_samples), ss, meta, **kw)

