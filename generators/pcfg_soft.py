"""Posterior ("soft") ancestor labels of layered PCFGs, in linear time.

In an ambiguous grammar the string does not determine its tree, so the ancestor of a
token at depth ``d`` is a random variable given the string. Its law,
``P(ancestor_d(t) = A | x)``, is the best any probe can know; its most probable
value is the *MAP label*, and the mean of ``max_A P(ancestor_d(t) = A | x)`` is the
accuracy a Bayes-optimal labeller reaches against the generating tree.

For a layered grammar (every nonterminal at one depth) the derivation is a hidden
Markov model over ancestor chains (:mod:`generators.pcfg_prefix`), so the
forward–backward recursion (Rabiner 1989, eqs. 18–27) gives the chain posterior of
every token::

    alpha_t(c) = P(x_<t, chain_t = c),   alpha_0 = pi,
    alpha_{t+1} = T^T (alpha_t * e_t),   e_t(c) = [emit(c) = x_t]
    b_{n-1}(c) = e_{n-1}(c) [c final],   b_t(c) = e_t(c) (T b_{t+1})(c)
    gamma_t(c) = alpha_t(c) b_t(c) / P(x)

and ``P(ancestor_d(t) = A | x) = sum_c gamma_t(c) [symbol_d(c) = A]``. Both passes
only visit chains that emit the observed token, and each vector is rescaled per step
(``gamma_t`` is renormalised, so the scales cancel). The values equal
:func:`generators.pcfg_inference.ancestor_posteriors` (the cubic span chart), which
the tests check.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from generators import pcfg_prefix
from generators.pcfg_grammar import Grammar


@lru_cache(maxsize=8)
def _restricted(g: Grammar) -> tuple[tuple[tuple[sp.csr_matrix, ...], ...],
                                      tuple[sp.csr_matrix, ...]]:
    """``step[a][b]``: (n_a, n_b) transitions between chains emitting ``a`` then ``b``;
    ``proj[a]``: (N, n_a) one-hot map from such chains to their ancestors' symbols."""
    c = pcfg_prefix.chains(g)
    V, N = g.n_terminals, g.n_nonterminals
    step = tuple(tuple(c.step_t[a][c.by_token[b]].T.tocsr() for b in range(V))
                 for a in range(V))
    D = c.symbols.shape[0]
    proj = []
    for a in range(V):
        idx = c.by_token[a]
        cols = np.tile(np.arange(len(idx)), D)
        proj.append(sp.csr_matrix((np.ones(D * len(idx)), (c.symbols[:, idx].ravel(), cols)),
                                  shape=(N, len(idx))))
    return step, tuple(proj)


def _one(g: Grammar, x: np.ndarray) -> np.ndarray:
    """(n, N) posterior symbol marginals of one string ``x`` (n,) of terminal ids."""
    c = pcfg_prefix.chains(g)
    step, proj = _restricted(g)
    n = len(x)
    alphas: list[np.ndarray] = []
    alpha = c.start[c.by_token[x[0]]]
    for t in range(n):
        s = alpha.sum()
        if not s > 0:
            raise ValueError(f"the string has probability 0 under grammar {g.name!r} "
                             f"(no derivation reaches token {t})")
        alphas.append(alpha / s)
        if t + 1 < n:
            alpha = step[x[t]][x[t + 1]].T @ alphas[-1]
    out = np.empty((n, g.n_nonterminals))
    b = c.final[c.by_token[x[-1]]].astype(np.float64)
    for t in range(n - 1, -1, -1):
        gamma = alphas[t] * b
        z = gamma.sum()
        if not z > 0:
            raise ValueError(f"the string has probability 0 under grammar {g.name!r} "
                             "(no derivation ends it)")
        out[t] = proj[x[t]] @ (gamma / z)
        if t:
            b = step[x[t - 1]][x[t]] @ b
            b /= b.max()
    return out


def posterior_levels(g: Grammar, x: np.ndarray, lengths: np.ndarray
                     ) -> tuple[np.ndarray, ...]:
    """Soft levels of a layered grammar: for every nonterminal depth ``d`` (root
    first) a ``(n, T, K_d)`` float32 array, ``[i, t, k] = P(ancestor_d(t) = A_k | x_i)``
    where ``A_k`` is the ``k``-th nonterminal of depth ``d`` (``np.flatnonzero(g.layer
    == d)``); rows sum to 1 over ``k`` on tokens and are 0 on padding.

    ``x`` is (n, T) terminal ids padded with -1 (as sampled), ``lengths`` (n,)."""
    if g.layer is None:
        raise ValueError(f"soft levels need a layered grammar (every nonterminal at one "
                         f"depth); grammar {g.name!r} is not layered. Use "
                         "generators.pcfg_inference.ancestor_posteriors for expected "
                         "ancestor counts instead")
    x = np.asarray(x)
    lengths = np.asarray(lengths)
    if x.ndim != 2 or lengths.shape != (len(x),):
        raise ValueError(f"x must be (n, T) and lengths (n,), got {x.shape} and {lengths.shape}")
    n, T = x.shape
    depths = [np.flatnonzero(g.layer == d) for d in range(int(g.layer.max()) + 1)]
    out = [np.zeros((n, T, len(cols)), np.float32) for cols in depths]
    for i in range(n):
        m = int(lengths[i])
        row = x[i, :m].astype(np.int64)
        if m == 0 or row.min() < 0 or row.max() >= g.n_terminals:
            raise ValueError(f"sample {i} (length {m}) has token ids outside "
                             f"0..{g.n_terminals - 1}")
        post = _one(g, row)                              # (m, N)
        for d, cols in enumerate(depths):
            out[d][i, :m] = post[:, cols]
    return tuple(out)


def map_labels(g: Grammar, soft: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Hard labels from :func:`posterior_levels`: per depth the code of the most
    probable ancestor (the nonterminal's id, as in the sampled ``levels``), -1 on
    padding; ties go to the lower id."""
    return tuple(map_labels_at(g, d, p) for d, p in enumerate(soft))


def map_labels_at(g: Grammar, depth: int, soft: np.ndarray) -> np.ndarray:
    """:func:`map_labels` of one depth: ``soft`` (n, T, K_depth) -> (n, T) int32."""
    if g.layer is None:
        raise ValueError(f"grammar {g.name!r} is not layered")
    cols = np.flatnonzero(g.layer == depth)
    if soft.shape[-1] != len(cols):
        raise ValueError(f"soft labels have {soft.shape[-1]} columns; depth {depth} of "
                         f"grammar {g.name!r} has {len(cols)} nonterminals")
    lab = cols[np.argmax(soft, axis=-1)].astype(np.int32)
    lab[soft.sum(axis=-1) == 0] = -1
    return lab
