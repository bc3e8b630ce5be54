"""Rank of a layer: numerical rank of the input-layer Jacobian, effective rank,
participation ratio (paper 000, eq. 3; Feng et al. 2022)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from tmr.metrics._common import as_features

__all__ = [
    "effective_rank",
    "jacobian_rank",
    "jacobian_singular_values",
    "numerical_rank",
    "participation_ratio",
]

# Default relative threshold for the numerical rank: singular values below
# EPS_RANK * sigma_max count as noise. Feng et al. (2022) leave eps a fixed
# tolerance; 1e-3 sits well above float64 round-off (~1e-16 * width) and below
# the spectra of trained layers. Report it with every value.
EPS_RANK = 1e-3


def numerical_rank(singular_values: object, *, eps: float = EPS_RANK) -> np.ndarray:
    """Count of singular values above ``eps * ||J||_2`` (Feng et al. 2022).

    ``singular_values`` is ``(..., k)``; ``||J||_2`` is the largest along the last
    axis. Returns ``(...)`` int64 (0 for an all-zero matrix).
    """
    s = np.asarray(singular_values, dtype=np.float64)
    if not eps > 0:
        raise ValueError(f"eps={eps} must be positive (e.g. {EPS_RANK})")
    top = s.max(axis=-1, keepdims=True)  # (..., 1)
    return ((s > eps * top) & (top > 0)).sum(axis=-1).astype(np.int64)


def jacobian_singular_values(fn: Callable[[torch.Tensor], torch.Tensor], x: object, *,
                             dtype: torch.dtype = torch.float64,
                             chunk_size: int | None = 64) -> np.ndarray:
    """Singular values of the per-sample Jacobian ``d fn(x_i) / d x_i``.

    ``fn`` maps a batch ``(b, *in_shape)`` to ``(b, *out_shape)`` without mixing
    samples (e.g. a model or ``lambda x: model.forward_from(site, x)``); its
    parameters must already be in ``dtype`` (``model.double()``). Jacobians are
    taken with ``torch.func.jacrev`` under ``torch.func.vmap``, flattened to
    ``(out_dim, in_dim)``; returns ``(n, min(out_dim, in_dim))`` descending.
    Cost: n reverse passes per output unit, memory ``chunk_size * out * in``.
    Caveat: layers that mix samples (BatchNorm in train mode) are not per-sample
    functions; call ``model.eval()`` first.
    """
    xt = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    xt = xt.to(dtype)
    if xt.ndim < 2:
        raise ValueError(f"x must be a batch (n, *in_shape); got shape {tuple(xt.shape)}")

    def single(z: torch.Tensor) -> torch.Tensor:
        return fn(z.unsqueeze(0)).squeeze(0)

    with torch.no_grad():
        out_shape = single(xt[0]).shape
    out_dim = int(np.prod(out_shape)) if len(out_shape) else 1
    in_dim = int(np.prod(xt.shape[1:]))
    # forward mode costs one pass per input unit, reverse mode one per output unit
    jac_mode = torch.func.jacrev if out_dim < in_dim else torch.func.jacfwd
    jac_fn = torch.func.vmap(jac_mode(single), chunk_size=chunk_size)
    jac = jac_fn(xt).reshape(xt.shape[0], out_dim, in_dim)  # (n, out, in)
    return torch.linalg.svdvals(jac.detach()).cpu().numpy().astype(np.float64)


def jacobian_rank(fn: Callable[[torch.Tensor], torch.Tensor], x: object, *,
                  eps: float = EPS_RANK, dtype: torch.dtype = torch.float64,
                  chunk_size: int | None = 64) -> np.ndarray:
    """Numerical rank ``(n,)`` of the input-layer Jacobian at each sample of ``x``.

    Rank = #{sigma_j > eps * sigma_max} (paper 000, eq. 3; Feng et al. 2022) of
    ``J = d fn(x_i)/d x_i`` (see :func:`jacobian_singular_values`). A composition
    of linear maps has rank <= the narrowest width. For one-hot token inputs the
    Jacobian is taken with respect to the one-hot (float) encoding.
    """
    return numerical_rank(jacobian_singular_values(fn, x, dtype=dtype, chunk_size=chunk_size),
                          eps=eps)


def _centred_spectrum(h: object, center: bool) -> np.ndarray:
    arr = as_features(h)
    if center:
        arr = arr - arr.mean(axis=0)
    # singular values (min(n, d),) of arr / sqrt(n): square roots of the covariance
    # eigenvalues, unchanged by duplication. Eigenvalues of the smaller Gram matrix
    # cost O(n d min(n, d)), several times less than an SVD of arr.
    scaled = arr / np.sqrt(arr.shape[0])
    gram = scaled.T @ scaled if arr.shape[0] >= arr.shape[1] else scaled @ scaled.T
    # eigvalsh is accurate to ~ size * eps * lam_max; below that an eigenvalue is 0
    # (so singular values under ~1e-7 sigma_max count as exactly zero)
    lam = np.linalg.eigvalsh(gram)[::-1]  # (min(n, d),) descending
    lam[lam <= gram.shape[0] * np.finfo(np.float64).eps * max(float(lam[0]), 0.0)] = 0.0
    return np.sqrt(lam)


def effective_rank(h: object, *, center: bool = True) -> float:
    """Effective rank exp(-sum p_j log p_j), ``p_j = sigma_j / sum sigma`` (Roy & Vetterli 2007).

    ``sigma_j`` are the singular values of the (centred) ``(n, d)`` activations.
    Between 1 and rank; equals r for r equal singular values. Scale-invariant,
    unchanged by duplicating samples. Caveat: small noise directions raise it.
    """
    s = _centred_spectrum(h, center)
    total = s.sum()
    if total <= 0:
        return float("nan")
    p = s[s > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def participation_ratio(h: object, *, center: bool = True) -> float:
    """Participation ratio (sum lambda)^2 / sum lambda^2 of the covariance eigenvalues.

    ``lambda_j = sigma_j^2 / n`` (Gao et al. 2017, "A theory of multineuronal
    dimensionality"). Equals r for r equal eigenvalues; more dominated by the top
    directions than :func:`effective_rank`.
    """
    lam = _centred_spectrum(h, center) ** 2
    denom = float((lam**2).sum())
    return float(lam.sum() ** 2 / denom) if denom > 0 else float("nan")
