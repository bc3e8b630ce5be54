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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from generators import _rng
from generators import ifs as ifs_
from generators import ifs_tables as tables_
from generators.base import HierarchicalSample

#: spawn-key tag of per-image seeds (distinct from the point blocks' 0xB10C)
IMAGE_KEY = 0x1A6E
#: images per chunk (the io chunk size counts samples; an image is ~100 kB)
IMAGE_CHUNK = 256
VALUES = ("count", "binary", "density")
#: random backgrounds are drawn in [0, BACKGROUND_SCALE)^3 (dark)
BACKGROUND_SCALE = 0.5
#: counts saturate here (uint16)
MAX_COUNT = np.iinfo(np.uint16).max


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


def pixel_index(x: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Flat pixel ``row * size + col`` (n,) of points ``x`` (2, n) in the square
    ``box`` (2, 2); row 0 is the top (largest y); points outside are clipped."""
    lo = box[0]
    scale = size / float(box[1, 0] - box[0, 0])
    # truncation equals floor for x >= lo; points below lo truncate to 0 or are clipped
    col = ((x[0] - lo[0]) * scale).astype(np.intp)
    row = ((x[1] - lo[1]) * scale).astype(np.intp)
    np.clip(col, 0, size - 1, out=col)
    np.clip(row, 0, size - 1, out=row)
    row -= size - 1
    row *= -size
    row += col
    return row


def hard_labels(pix: np.ndarray, code: np.ndarray, n_pixels: int) -> np.ndarray:
    """Per-pixel code (n_pixels,) int64: the code shared by all points in the pixel,
    else -1. Scatter then compare: a pixel with two codes always has a point whose
    code differs from whichever was written last (no sort needed)."""
    lab = np.full(n_pixels, -1, dtype=np.int64)
    lab[pix] = code
    bad = lab[pix] != code
    lab[pix[bad]] = -1
    return lab


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
    size/4`` pixels (boxes occupied by the hit ``mask`` (H, W)); 0 for an empty mask.
    Boxes of side ``2s`` are the OR of 2x2 boxes of side ``s`` (strided views)."""
    size = mask.shape[0]
    sides, counts = [], []
    m, s = mask, 1
    while s <= size // 4:
        n = int(np.count_nonzero(m))
        if n == 0:
            return 0.0
        sides.append(s)
        counts.append(n)
        if m.shape[0] % 2 or m.shape[1] % 2:
            break
        m = m[0::2, 0::2] | m[1::2, 0::2] | m[0::2, 1::2] | m[1::2, 1::2]
        s *= 2
    if len(sides) < 2:
        return float("nan")
    lx, ly = np.log(sides), np.log(counts)
    lx -= lx.mean()  # least-squares slope in closed form (polyfit costs 0.4 ms)
    return float(-(lx @ (ly - ly.mean())) / (lx @ lx))

def rasterise(x: np.ndarray, box: np.ndarray, prefixes: list[np.ndarray], k: int,
              size: int, value: str = "count", soft_levels: int = 1) -> Raster:
    """Bin points ``x`` (2, n) with level codes ``prefixes[l-1]`` (n,) into a Raster."""
    return rasterise_pixels(pixel_index(x, box, size), prefixes, k, size, value, soft_levels,
                            x=x, box=box)


def rasterise_pixels(pix: np.ndarray, prefixes: Sequence[np.ndarray], k: int, size: int,
                     value: str = "count", soft_levels: int = 1, *, x: np.ndarray | None = None,
                     box: np.ndarray | None = None) -> Raster:
    """:func:`rasterise` from flat pixel indices ``pix`` (n,); ``x`` (2, n) and
    ``box`` are needed only for ``value="density"``."""
    n_pix = size * size
    counts = np.bincount(pix, minlength=n_pix)  # (H*W,)
    hit = counts > 0
    n_hit = max(int(hit.sum()), 1)
    maps = tuple(hard_labels(pix, c, n_pix) for c in prefixes)
    ambiguous = np.array([float(np.count_nonzero(hit & (m < 0))) / n_hit for m in maps])
    soft = []
    for l, c in enumerate(prefixes[:soft_levels], start=1):
        h = np.bincount(pix * k**l + c, minlength=n_pix * k**l).reshape(n_pix, k**l)
        soft.append((h / np.maximum(counts, 1)[:, None]).astype(np.float32)
                    .reshape(size, size, k**l))
    overlap = (hit & (maps[0] < 0)) if maps else np.zeros(n_pix, bool)
    image: np.ndarray
    if value == "count":
        image = np.minimum(counts, MAX_COUNT).astype(np.uint16).reshape(size, size)
    elif value == "binary":
        image = hit.astype(np.uint8).reshape(size, size)
    else:
        if x is None or box is None:
            raise ValueError("value='density' needs the points x and the box")
        image = density(x, box, size)
    return Raster(image=image, address_maps=tuple(m.reshape(size, size) for m in maps),
                  soft=tuple(soft), overlap=overlap.reshape(size, size),
                  fill_rate=float(hit.mean()), ambiguous=ambiguous,
                  box_dimension=mask_box_dimension(hit.reshape(size, size)))


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


def render(world: ifs_.World, index: int, seed: _rng.RNGLike, *, image_size: int = 128,
           n_points: int = 100_000, depth: int | None = None, n_address_levels: int = 3,
           value: str = "count", soft_levels: int = 1,
           colour: bool = False) -> tuple[int, Raster]:
    """Render image ``index`` of the draw seeded by ``seed``: ``(instance, raster)``.
    Depends only on ``(world, index, seed)`` and the keywords; ``colour`` draws its
    colours after the points, so the labels are the same with and without it."""
    d = check_image_args(world, image_size, n_points, depth, n_address_levels, value,
                         soft_levels)
    gen = np.random.Generator(np.random.PCG64(image_seed(seed, index)))
    q = int(gen.integers(0, world.n_classes)) if world.n_classes > 1 else 0
    lengths = tables_.chunk_lengths(world, d)
    u = gen.random((len(lengths), n_points))  # (n_chunks, n_points)
    box = world.instance_box(q)
    pix = np.empty(n_points, dtype=np.intp)
    pref = np.empty((n_address_levels, n_points), dtype=np.int64)
    xs = np.empty((2, n_points)) if value == "density" else None
    for a in range(0, n_points, tables_.SLICE):  # cache-sized slices, see tables_.evaluate
        b = min(a + tables_.SLICE, n_points)
        codes = tables_.codes(world, q, lengths, u[:, a:b])
        x = tables_.evaluate(world, q, lengths, codes)  # (2, b - a)
        pix[a:b] = pixel_index(x, box, image_size)
        for l, p in enumerate(tables_.prefix_codes(world.n_maps, lengths, codes,
                                                   n_address_levels)):
            pref[l, a:b] = p
        if xs is not None:
            xs[:, a:b] = x
    r = rasterise_pixels(pix, list(pref), world.n_maps, image_size, value, soft_levels,
                         x=xs, box=box)
    if colour:
        r = dataclasses.replace(r, image=colourise(r.image, gen))
    return q, r


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
                  meta: dict[str, Any], **kw: Any) -> HierarchicalSample:
    """Images ``start..stop-1`` of the draw seeded by ``ss`` as one sample:
    ``x`` (n, H, W) (or (n, H, W, 3) with ``colour``), levels ``system``/``instance``
    (n,) when more than one, then ``address<l>`` (n, H, W); aux ``overlap``
    (n, H, W), ``soft_address<l>`` (n, H, W, K^l), ``fill_rate`` (n,), ``ambiguous``
    (n, L), ``box_dimension`` (n,)."""
    out = [render(world, i, ss, **kw) for i in range(start, stop)]
    n, size, k = stop - start, kw["image_size"], world.n_maps
    n_levels = kw["n_address_levels"]
    inst = np.array([q for q, _ in out], dtype=np.int64)
    rs = [r for _, r in out]
    empty_shape = (0, size, size, 3) if kw.get("colour") else (0, size, size)
    empty_dtype = np.float32 if kw["value"] == "density" or kw.get("colour") else (
        np.uint8 if kw["value"] == "binary" else np.uint16)
    x = np.stack([r.image for r in rs]) if rs else np.zeros(empty_shape, empty_dtype)
    levels = ifs_._id_levels(world, inst)
    for l in range(n_levels):
        arr = np.empty((n, size, size), _min_int_dtype(k ** (l + 1) - 1))
        for i, r in enumerate(rs):
            arr[i] = r.address_maps[l]
        levels.append(arr)
    aux: dict[str, np.ndarray] = {
        "overlap": np.stack([r.overlap for r in rs]) if rs else np.zeros((0, size, size), bool),
        "fill_rate": np.array([r.fill_rate for r in rs]),
        "ambiguous": np.array([r.ambiguous for r in rs]).reshape(n, n_levels),
        "box_dimension": np.array([r.box_dimension for r in rs]),
    }
    for l in range(kw["soft_levels"]):
        aux[f"soft_address{l + 1}"] = (np.stack([r.soft[l] for r in rs]) if rs else
                                      np.zeros((0, size, size, k ** (l + 1)), np.float32))
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

