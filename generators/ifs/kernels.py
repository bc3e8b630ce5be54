"""Compiled inner loops of IFS sampling: uniforms in, points, addresses and pixels out.

A point of depth ``D`` is drawn from one uniform per tabulated chunk of its address
(:mod:`generators.ifs.tables`): chunk ``c`` of length ``L_c`` takes word code
``w = floor(u K^{L_c})``, replaced by ``alias[w]`` when ``u K^{L_c} - w >= accept[w]``
(Walker's alias method; skipped when the maps are equiprobable). The point is the
innermost chunk's tabulated image of ``x_0``, mapped by each outer chunk's composed
affine map, innermost to outermost: ``x <- A_w x + b_w`` evaluated as
``b_r + A_r0 x_0 + A_r1 x_1 + …`` in that order, the float operations of the numpy
evaluation (:func:`generators.ifs.tables.evaluate`), so both give the same bits.

The kernels draw nothing: the caller passes the uniforms, drawn from an explicit
Generator. They work through the points in slices of ``SLICE`` (word codes and
coordinates of a slice stay in L1 cache, and each loop over a slice has a fixed body
that compiles to tight code), doing all the per-point work before the next slice:
:func:`points_kernel` writes points, ``D`` address digits and prefix codes;
:func:`raster_kernel` bins points into pixels and updates each pixel's count, the
level-``L`` code of its first point, the shallowest level at which a later point
disagreed, and soft histograms; :func:`finish_kernel` turns that state into the
image and the hard labels of every level. No ``(n_points, D)`` array is built for
images.
"""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from generators._jit import jit
from generators.ifs import tables as tables_

if TYPE_CHECKING:
    from generators.ifs.world import World

#: points per slice: codes (C, SLICE) int64 and coordinates (d, SLICE) stay in L1
SLICE = 512


class Packed(NamedTuple):
    """The tables of one system at one depth, stacked for the kernels (``C`` chunks,
    ``T`` = the largest table): ``lengths`` (C,) digits per chunk, outermost first;
    ``sizes`` (C,) ``K^L``; ``law`` (C, T, 2) ``(accept, alias)`` of each chunk's
    word law (unused when ``uniform``); ``aff`` (C, T, d*d + d) each word's composed
    map, ``A`` row-major then ``b`` (read for outer chunks only); ``pts`` (K^L_inner,
    d) images of ``x_0`` under the innermost words; ``digits`` (C, T) uint64, byte
    ``j`` = letter ``j`` of the word."""

    k: int
    uniform: bool
    lengths: np.ndarray
    sizes: np.ndarray
    law: np.ndarray
    aff: np.ndarray
    pts: np.ndarray
    digits: np.ndarray


@functools.lru_cache(maxsize=256)
def packed(world: World, instance: int, depth: int) -> Packed:
    """:class:`Packed` tables of global instance ``instance`` at depth ``depth``."""
    k, d = world.n_maps, world.dim
    lengths = tables_.chunk_lengths(world, depth)
    tabs = [tables_.table(world, instance, length) for length in lengths]
    sizes = np.array([k**length for length in lengths], dtype=np.int64)
    n_chunks, top = len(lengths), int(sizes.max())
    law = np.zeros((n_chunks, top, 2))
    law[:, :, 0] = 1.0
    aff = np.zeros((n_chunks, top, d * d + d))
    digits = np.zeros((n_chunks, top), np.uint64)
    for c, (length, t) in enumerate(zip(lengths, tabs, strict=True)):
        m = k**length
        if t.alias is not None:
            law[c, :m, 0], law[c, :m, 1] = t.alias
        aff[c, :m, :d * d] = t.lin.reshape(d * d, m).T
        aff[c, :m, d * d:] = t.off.T
        digits[c, :m] = tables_.digit_table(k, length)
    if sys.byteorder != "little":  # pragma: no cover - the kernels read uint64 as bytes
        raise RuntimeError("generators.ifs.kernels assumes a little-endian machine")
    return Packed(k=k, uniform=tabs[0].alias is None, lengths=np.array(lengths, np.int64),
                  sizes=sizes, law=law, aff=aff, pts=np.ascontiguousarray(tabs[-1].pts.T),
                  digits=digits)


@functools.lru_cache(maxsize=64)
def level_heads(k: int, lengths: tuple[int, ...], levels: tuple[int, ...]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How to read level codes off word codes: for each level ``l`` of ``levels``,
    ``code_l = fold over chunks c < n[l] of acc * mult[l, c] + head[l, c, w_c]`` with
    ``head[l, c, w] = w // K^(L_c - t)`` (the word's first ``t`` letters, ``t`` of them
    inside the prefix) and ``mult[l, c] = K^t``. Returns ``(head (n_l, C, T) int64,
    mult (n_l, C) int64, n (n_l,) int64)``."""
    top = max(k**length for length in lengths)
    head = np.zeros((len(levels), len(lengths), top), np.int64)
    mult = np.ones((len(levels), len(lengths)), np.int64)
    n = np.zeros(len(levels), np.int64)
    for i, level in enumerate(levels):
        start = 0
        for c, length in enumerate(lengths):
            t = min(max(level - start, 0), length)
            if t == 0:
                break
            head[i, c, :k**length] = np.arange(k**length) // k ** (length - t)
            mult[i, c] = k**t
            n[i] = c + 1
            start += length
    return head, mult, n


@jit
def _codes(u: np.ndarray, a: int, m: int, uniform: bool, sizes: np.ndarray, law: np.ndarray,
           code: np.ndarray) -> None:
    """Word codes ``code[c, i]`` (C, >= m) of the samples in columns ``a .. a+m-1``."""
    for c in range(u.shape[0]):
        size = sizes[c]
        scale = float(size)
        for i in range(m):
            s = u[c, a + i] * scale
            w = int(s)  # truncation is floor: s >= 0
            if w >= size:  # never for u < 1 (u K^L rounds below K^L): guards the
                w = size - 1  # unchecked table reads
            if not uniform and s - w >= law[c, w, 0]:
                w = int(law[c, w, 1])
            code[c, i] = w


@jit
def _evaluate(code: np.ndarray, m: int, aff: np.ndarray, pts: np.ndarray,
              xs: np.ndarray) -> None:
    """Points ``xs[:, i]`` (d, >= m) of the words ``code[:, i]``."""
    n_chunks, d = code.shape[0], xs.shape[0]
    for r in range(d):
        for i in range(m):
            xs[r, i] = pts[code[n_chunks - 1, i], r]
    new = np.empty(d)
    for c in range(n_chunks - 2, -1, -1):
        if d == 2:  # the common case, in registers
            for i in range(m):
                w = code[c, i]
                x0, x1 = xs[0, i], xs[1, i]
                y0 = aff[c, w, 4]
                y0 += aff[c, w, 0] * x0
                y0 += aff[c, w, 1] * x1
                y1 = aff[c, w, 5]
                y1 += aff[c, w, 2] * x0
                y1 += aff[c, w, 3] * x1
                xs[0, i], xs[1, i] = y0, y1
        else:
            for i in range(m):
                w = code[c, i]
                for r in range(d):
                    acc = aff[c, w, d * d + r]
                    for s in range(d):
                        acc += aff[c, w, r * d + s] * xs[s, i]
                    new[r] = acc
                for r in range(d):
                    xs[r, i] = new[r]


@jit
def _level_codes(code: np.ndarray, m: int, head: np.ndarray, mult: np.ndarray,
                 n_head: np.ndarray, out: np.ndarray, a: int) -> None:
    """``out[j, a + i]`` = the code of level ``j`` of :func:`level_heads` for words
    ``code[:, i]``, ``i < m``."""
    for j in range(out.shape[0]):
        if n_head[j] == 1:  # the level lies in the outermost chunk: one gather
            for i in range(m):
                out[j, a + i] = head[j, 0, code[0, i]]
            continue
        for i in range(m):
            out[j, a + i] = 0
        for c in range(n_head[j]):
            mu = mult[j, c]
            for i in range(m):
                out[j, a + i] = out[j, a + i] * mu + head[j, c, code[c, i]]


@jit
def points_kernel(u: np.ndarray, i0: int, uniform: bool, lengths: np.ndarray,
                  sizes: np.ndarray, law: np.ndarray, aff: np.ndarray, pts: np.ndarray,
                  digits: np.ndarray, head: np.ndarray, mult: np.ndarray, n_head: np.ndarray,
                  x_out: np.ndarray, addr_words: np.ndarray, lev_out: np.ndarray) -> None:
    """Samples ``i < n = len(x_out)`` from the uniforms in columns ``i0 + i`` of ``u``
    (C, >= i0 + n): point ``x_out[i]`` (d,); address digits, outermost first, as bytes
    ``i D … i D + D - 1`` of ``addr_words`` (ceil(n D / 8),) uint64 read little-endian,
    i.e. an (n, D) uint8 array; level codes ``lev_out[l, i] = Σ_{j<=l+1} a_j
    K^{l+1-j}`` for the ``lev_out.shape[0]`` first levels, read off the word codes by
    ``head, mult, n_head`` (:func:`level_heads` of levels ``1, 2, …``). Each chunk's
    letters are one uint64 (``digits``), shifted into one or two output words."""
    n_chunks = u.shape[0]
    n, d = x_out.shape
    depth = 0
    for c in range(n_chunks):
        depth += lengths[c]
    code = np.empty((n_chunks, SLICE), np.int64)
    xs = np.empty((d, SLICE))
    for a in range(0, n, SLICE):
        m = min(SLICE, n - a)
        _codes(u, i0 + a, m, uniform, sizes, law, code)
        _evaluate(code, m, aff, pts, xs)
        for i in range(m):
            for r in range(d):
                x_out[a + i, r] = xs[r, i]
        for q in range(a * depth // 8, ((a + m) * depth + 7) // 8):  # SLICE % 8 == 0
            addr_words[q] = 0
        col = 0
        for c in range(n_chunks):
            length = lengths[c]
            for i in range(m):
                v = digits[c, code[c, i]]
                o = (a + i) * depth + col  # byte offset of the chunk's first letter
                shift = np.uint64(8 * (o & 7))
                addr_words[o >> 3] |= v << shift
                if (o & 7) + length > 8:  # spills into the next word (shift >= 8)
                    addr_words[(o >> 3) + 1] |= v >> (np.uint64(64) - shift)
            col += length
        _level_codes(code, m, head, mult, n_head, lev_out, a)


@jit
def raster_kernel(u: np.ndarray, uniform: bool, sizes: np.ndarray, law: np.ndarray,
                  aff: np.ndarray, pts: np.ndarray, head: np.ndarray, mult: np.ndarray,
                  n_head: np.ndarray, lo0: float, lo1: float, scale: float, size: int,
                  k: int, prefix: np.ndarray, state: np.ndarray, mdis: np.ndarray,
                  soft_off: np.ndarray, hist: np.ndarray, xs_out: np.ndarray) -> None:
    """Bin the points of uniforms ``u`` (C, n) into ``size``² pixels over the square
    with lower corner ``(lo0, lo1)`` and ``scale`` pixels per unit (row 0 on top; a
    coordinate is truncated, then clipped to the border, as numpy's ``astype`` and
    ``clip``). Per flat pixel ``p``: ``state[p, 0]`` points, ``state[p, 1]`` the
    level-``L`` code of the first (``L = len(prefix)``), ``mdis[p]`` (preset to
    ``L + 1``) the shallowest level at which a later point's code differs, found with
    ``prefix`` (L, K^L) (level codes of each level-L code, as in :func:`finish_kernel`)
    or, when it has no columns, by dividing by ``k``. Level codes come from
    :func:`level_heads` for levels ``(L, 1, 2, …)``; soft level ``l`` adds 1 to
    ``hist[soft_off[l-1] + p K^l + code_l]``. ``xs_out`` (2, n) gets the points when it
    has ``n`` columns."""
    n_chunks, n = u.shape
    n_levels, lut = prefix.shape[0], prefix.shape[1] > 0
    n_soft = soft_off.shape[0]
    keep_x = xs_out.shape[1] == n
    code = np.empty((n_chunks, SLICE), np.int64)
    xs = np.empty((2, SLICE))
    lc = np.empty((1 + n_soft, SLICE), np.int64)  # codes of levels L, 1, 2, …
    for a in range(0, n, SLICE):
        m = min(SLICE, n - a)
        _codes(u, a, m, uniform, sizes, law, code)
        _evaluate(code, m, aff, pts, xs)
        _level_codes(code, m, head, mult, n_head, lc, 0)
        for i in range(m):
            x0, x1 = xs[0, i], xs[1, i]
            if keep_x:
                xs_out[0, a + i], xs_out[1, a + i] = x0, x1
            col = min(max(int((x0 - lo0) * scale), 0), size - 1)
            row = min(max(int((x1 - lo1) * scale), 0), size - 1)
            p = (size - 1 - row) * size + col
            state[p, 0] += 1
            if n_levels > 0:
                cl = lc[0, i]
                if state[p, 0] == 1:
                    state[p, 1] = cl
                elif cl != state[p, 1] and mdis[p] > 1:
                    f = state[p, 1]
                    if lut:  # shallowest level below mdis where the prefixes differ
                        for lv in range(mdis[p] - 1):
                            if prefix[lv, cl] != prefix[lv, f]:
                                mdis[p] = lv + 1
                                break
                    else:
                        lv = n_levels  # the codes agree at level lv once equal
                        while f != cl:
                            f, cl, lv = f // k, cl // k, lv - 1
                        if lv + 1 < mdis[p]:
                            mdis[p] = lv + 1
            kl = 1
            for j in range(1, n_soft + 1):
                kl *= k
                hist[soft_off[j - 1] + p * kl + lc[j, i]] += 1


@jit
def finish_kernel(state: np.ndarray, mdis: np.ndarray, k: int, top: int, prefix: np.ndarray,
                  maps: np.ndarray, overlap: np.ndarray,
                  image: np.ndarray) -> tuple[int, np.ndarray]:
    """From the pixel state of :func:`raster_kernel`: hard labels ``maps[l, p]`` (the
    level-(l+1) code of the pixel's points when they all share it, else -1),
    ``overlap[p]`` (hit and ambiguous at level 1) and ``image[p]`` (the count,
    saturated at ``top``: 1 gives a binary image). ``prefix`` (L, K^L) tabulates
    level codes from level-L codes (``c // K^(L-l-1)``), or has no columns (then
    divide). Returns the number of hit pixels and the ambiguous hit pixels per
    level (L,)."""
    n_pix, n_levels = state.shape[0], maps.shape[0]
    lut = prefix.shape[1] > 0
    amb = np.zeros(n_levels, np.int64)
    n_hit = 0
    for p in range(n_pix):
        c = state[p, 0]
        if c == 0:
            image[p] = 0
            overlap[p] = False
            for lv in range(n_levels):
                maps[lv, p] = -1
            continue
        n_hit += 1
        image[p] = min(c, top)
        m = mdis[p]
        overlap[p] = n_levels > 0 and m <= 1
        f = state[p, 1]
        for lv in range(n_levels - 1, -1, -1):  # level lv + 1, deepest first
            if lv + 1 >= m:
                maps[lv, p] = -1
                amb[lv] += 1
            else:
                maps[lv, p] = prefix[lv, f] if lut else f
            if not lut:
                f //= k
    return n_hit, amb


@jit
def box_counts(mask: np.ndarray) -> np.ndarray:
    """Boxes of side ``s = 1, 2, 4, …, H/4`` pixels holding a nonzero of ``mask``
    (H, W): boxes of side ``2s`` OR 2x2 boxes of side ``s``, stopping after a level
    with an odd side. Returns the counts (int64), cut after the first zero."""
    h, w = mask.shape
    out = np.zeros(64, np.int64)
    cur = np.empty((h // 2, w // 2), np.bool_)
    cnt = 0
    for r in range(h):
        for c in range(w):
            if mask[r, c] != 0:
                cnt += 1
    n_out, s = 0, 1
    while s <= mask.shape[0] // 4:
        out[n_out] = cnt
        n_out += 1
        if cnt == 0 or h % 2 or w % 2:
            break
        h, w, cnt = h // 2, w // 2, 0
        for r in range(h):
            for c in range(w):
                if s == 1:
                    v = (mask[2 * r, 2 * c] != 0 or mask[2 * r + 1, 2 * c] != 0
                         or mask[2 * r, 2 * c + 1] != 0 or mask[2 * r + 1, 2 * c + 1] != 0)
                else:
                    v = (cur[2 * r, 2 * c] or cur[2 * r + 1, 2 * c] or cur[2 * r, 2 * c + 1]
                         or cur[2 * r + 1, 2 * c + 1])
                cur[r, c] = v  # row r < 2r: read before overwritten
                if v:
                    cnt += 1
        s *= 2
    return out[:n_out]


@jit
def normalise_kernel(hist: np.ndarray, state: np.ndarray, out: np.ndarray) -> None:
    """Soft labels ``out[p, c] = hist[p, c] / max(state[p, 0], 1)`` (division in
    float64, stored as ``out``'s dtype; a pixel's histogram sums to its count)."""
    n_pix, m = hist.shape
    for p in range(n_pix):
        c = state[p, 0]
        for j in range(m):
            h = hist[p, j]  # 0 and h == c need no division (most pixels)
            out[p, j] = 0.0 if h == 0 else (1.0 if h == c else h / c)
