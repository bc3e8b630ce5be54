"""Spectral schemes: PCA of a layer, truncation of any PSD kernel, faithfulness curves.

PCA (background.md §4): C = (H − μ)ᵀ(H − μ)/n = V Λ Vᵀ; keep the top-k columns V_k.
The coarse representation is the scores Z_k = (H − μ)V_k; the projected layer is
P_k(H) = μ + (H − μ) V_k V_kᵀ and the tail basis is V_tail (orthonormal complement).
Kernels (eNTK Θ = JJᵀ, conjugate kernel K = HHᵀ/d, Fisher Gram S Sᵀ) are truncated the
same way in sample space: K_k = U_k Λ_k U_kᵀ.

Faithfulness: an observable g of the network evaluated with the site replaced by
P_k(H), i.e. g(f_{>ℓ}(P_k(H))) via the HookedModel contract ``forward_from(site, h)``,
and probe scores on P_k(H) per latent level, as k shrinks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from tmr.rg.base import CoarseGrained
from tmr.rg.spectrum import alignment_relevance, cutoff_for_budget, eigh_desc

Order = Literal["eigenvalue", "alignment"]

# Ridge strength of the built-in closed-form probe (relative to mean feature variance).
PROBE_RIDGE = 1e-3
# Held-out fraction for the built-in probe.
PROBE_TEST_FRACTION = 0.3


def _resolve_k(scale: float, eigvals: np.ndarray) -> int:
    """Scale ≥ 1: keep k = int(scale) modes; 0 < scale < 1: variance budget (cutoff)."""
    m = eigvals.size
    if 0.0 < scale < 1.0:
        return cutoff_for_budget(eigvals, scale)
    k = int(scale)
    if k != scale or not 0 <= k <= m:
        raise ValueError(f"scale={scale}: give an integer k in [0, {m}] kept modes, or a "
                         f"variance budget in (0, 1)")
    return k


def _select(eigvals: np.ndarray, align: np.ndarray | None, k: int,
            order: Order) -> tuple[np.ndarray, np.ndarray]:
    """Indices of kept and discarded modes, kept ordered by decreasing relevance."""
    if order == "eigenvalue" or align is None:
        idx = np.arange(eigvals.size)
    else:
        idx = np.argsort(-align, kind="stable")
    return idx[:k], idx[k:]


class PCAScheme:
    """PCA of a layer's activations ``(n_samples, d)``; scale = kept modes k (or a budget).

    Args:
        order: ``"eigenvalue"`` keeps the top-k variance modes; ``"alignment"`` keeps the
            k modes whose scores best align with ``target`` (see ``alignment_relevance``).
        target: labels ``(n,)`` or real targets ``(n, m)`` for alignment relevance.
    """

    name = "pca"

    def __init__(self, *, order: Order = "eigenvalue", target: np.ndarray | None = None):
        if order not in ("eigenvalue", "alignment"):
            raise ValueError(f"order={order!r}: use 'eigenvalue' or 'alignment'")
        if order == "alignment" and target is None:
            raise ValueError("order='alignment' needs a target (labels or observable values)")
        self.order: Order = order
        self.target = target
        self._cache: tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None

    def fit(self, h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean ``(d,)``, eigenvalues ``(d,)`` decreasing and eigenvectors ``(d, d)`` of H."""
        if self._cache is not None and self._cache[0] is h:
            return self._cache[1]
        x = np.asarray(h, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"PCA expects activations (n_samples, d), got shape {x.shape}; "
                             f"flatten per sample first")
        mu = x.mean(axis=0)  # (d,)
        xc = x - mu  # (n, d)
        vals, vecs = eigh_desc(xc.T @ xc / x.shape[0])  # (d,), (d, d)
        self._cache = (h, (mu, vals, vecs))
        return mu, vals, vecs

    def __call__(self, representation: np.ndarray, scale: float) -> CoarseGrained:
        mu, vals, vecs = self.fit(representation)
        x = np.asarray(representation, dtype=np.float64)
        xc = x - mu  # (n, d)
        scores = xc @ vecs  # (n, d) all PCA scores
        align = alignment_relevance(scores, self.target) if self.target is not None else None
        k = _resolve_k(scale, vals)
        keep, drop = _select(vals, align, k, self.order)
        rel = align if (self.order == "alignment" and align is not None) else vals
        v_k, v_t = vecs[:, keep], vecs[:, drop]  # (d, k), (d, d-k)
        coarse = scores[:, keep]  # (n, k)
        remainder = scores[:, drop] @ v_t.T  # (n, d) = H − P_k(H)
        meta: dict[str, Any] = {"mean": mu, "eigvals": vals, "k": k,
                                "kept_index": keep, "tail_index": drop}
        if align is not None:
            meta["alignment"] = align
        return CoarseGrained(coarse=coarse, modes=v_k, relevance=rel[keep],
                             tail_basis=v_t, tail_relevance=rel[drop], remainder=remainder,
                             scale=float(k), scheme=self.name, meta=meta)


class KernelScheme:
    """Truncate a PSD kernel ``(n, n)`` (eNTK, conjugate kernel, Fisher Gram) to rank k.

    Sample-space modes U_k ``(n, k)``; coarse = U_k Λ_k U_kᵀ; remainder = K − coarse.
    """

    def __init__(self, name: str = "kernel", *, order: Order = "eigenvalue",
                 target: np.ndarray | None = None):
        if order == "alignment" and target is None:
            raise ValueError("order='alignment' needs a target (labels or observable values)")
        self.name = name
        self.order: Order = order
        self.target = target

    def __call__(self, representation: np.ndarray, scale: float) -> CoarseGrained:
        kmat = np.asarray(representation, dtype=np.float64)  # (n, n)
        vals, vecs = eigh_desc(kmat)
        align = alignment_relevance(vecs, self.target) if self.target is not None else None
        k = _resolve_k(scale, vals)
        keep, drop = _select(vals, align, k, self.order)
        rel = align if (self.order == "alignment" and align is not None) else vals
        u_k = vecs[:, keep]  # (n, k)
        coarse = (u_k * vals[keep]) @ u_k.T  # (n, n)
        meta: dict[str, Any] = {"eigvals": vals, "k": k, "kept_index": keep}
        if align is not None:
            meta["alignment"] = align
        return CoarseGrained(coarse=coarse, modes=u_k, relevance=rel[keep],
                             tail_basis=vecs[:, drop], tail_relevance=rel[drop],
                             remainder=kmat - coarse, scale=float(k), scheme=self.name,
                             meta=meta)


def conjugate_kernel(h: np.ndarray, *, centre: bool = False) -> np.ndarray:
    """Conjugate (NNGP-like) kernel of a layer, K = H Hᵀ / d, ``(n, n)`` (Lee et al. 2018)."""
    x = np.asarray(h, dtype=np.float64).reshape(len(h), -1)  # (n, d)
    if centre:
        x = x - x.mean(axis=0)
    return x @ x.T / x.shape[1]


def project_top_k(h: np.ndarray, basis: np.ndarray, mean: np.ndarray, k: int) -> np.ndarray:
    """P_k(H) = μ + (H − μ) V_k V_kᵀ for ``h`` ``(n, d)``, ``basis`` ``(d, r)`` ordered."""
    x = np.asarray(h, dtype=np.float64)
    v = basis[:, :k]  # (d, k)
    return mean + ((x - mean) @ v) @ v.T


def ridge_probe_accuracy(h: np.ndarray, y: np.ndarray, *, seed: int = 0) -> float:
    """Held-out accuracy of a closed-form ridge one-vs-rest linear probe (a fast default).

    W = (XᵀX + λI)⁻¹ Xᵀ Y on a random 70 % split (X with a bias column, Y one-hot),
    λ = PROBE_RIDGE · n · mean feature variance; accuracy = mean(argmax XW == y) on the rest.
    """
    x = np.asarray(h, dtype=np.float64).reshape(len(h), -1)  # (n, d)
    _, labels = np.unique(np.asarray(y), return_inverse=True)  # (n,)
    n = x.shape[0]
    perm = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(PROBE_TEST_FRACTION * n))
    test, train = perm[:n_test], perm[n_test:]
    mu, sd = x[train].mean(axis=0), x[train].std(axis=0)
    xs = (x - mu) / np.where(sd > 0, sd, 1.0)
    xb = np.hstack([xs, np.ones((n, 1))])  # (n, d+1)
    onehot = np.eye(int(labels.max()) + 1)[labels]  # (n, c)
    lam = PROBE_RIDGE * len(train)
    a = xb[train].T @ xb[train] + lam * np.eye(xb.shape[1])
    w = np.linalg.solve(a, xb[train].T @ onehot[train])  # (d+1, c)
    return float(np.mean(np.argmax(xb[test] @ w, axis=1) == labels[test]))


def selectivity_scorer(input_keys: np.ndarray, *, seed: int = 0
                       ) -> Callable[[np.ndarray, np.ndarray], float]:
    """Probe selectivity (Hewitt & Liang 2019): acc(real labels) − acc(control labels).

    Control task: each distinct input (a row of ``input_keys`` ``(n, ...)``, e.g. the
    input tokens) gets one fixed random label from the real label set, so a probe can
    only solve it by memorising inputs. Both accuracies use ``ridge_probe_accuracy``.
    """
    keys = np.asarray(input_keys).reshape(len(input_keys), -1)
    _, types = np.unique(keys, axis=0, return_inverse=True)  # (n,) input type ids
    types = types.reshape(-1)

    def score(h: np.ndarray, y: np.ndarray) -> float:
        classes = np.unique(np.asarray(y))
        # a fresh generator per call: the same control task at every k for a level
        gen = np.random.default_rng([seed, classes.size])
        control = gen.choice(classes, size=int(types.max()) + 1)[types]  # (n,)
        return ridge_probe_accuracy(h, y) - ridge_probe_accuracy(h, control)

    return score


def faithfulness_curve(
    h: np.ndarray,
    basis: np.ndarray,
    mean: np.ndarray,
    ks: Sequence[int],
    *,
    forward: Callable[[np.ndarray], np.ndarray] | None = None,
    observables: Mapping[str, Callable[[np.ndarray], float]] | None = None,
    levels: Mapping[str, np.ndarray] | None = None,
    probe_score: Callable[[np.ndarray, np.ndarray], float] = ridge_probe_accuracy,
) -> list[dict[str, float]]:
    """Observables as the number of kept modes k shrinks; one row per k.

    Args:
        h: activations at the site ``(n, *site_shape)``; flattened to ``(n, d)`` to project
            and reshaped back before ``forward``.
        basis: ordered orthonormal modes ``(d, r)`` (e.g. PCA ``V``; column 0 most relevant).
        mean: centre ``(d,)`` of the projection.
        ks: kept-mode counts to evaluate.
        forward: continues the network from the site, e.g.
            ``lambda z: model.forward_from(site, torch.as_tensor(z)).detach().numpy()``.
        observables: name -> function of the network output ``(n, ...)`` (loss, accuracy).
        levels: latent level name -> labels ``(n,)``; scored with ``probe_score`` on P_k(H).
        probe_score: ``(features (n, d), labels (n,)) -> score``; swap in a selectivity
            (accuracy minus control-task accuracy) scorer from ``tmr.probes`` when available.
    Returns:
        rows ``{"k": k, "<observable>": value, "probe:<level>": score}``.
    """
    x = np.asarray(h, dtype=np.float64)
    shape = x.shape
    flat = x.reshape(shape[0], -1)  # (n, d)
    if basis.shape[0] != flat.shape[1]:
        raise ValueError(f"basis has {basis.shape[0]} rows but the site has "
                         f"{flat.shape[1]} features per sample")
    if observables and forward is None:
        raise ValueError("observables given without forward: pass forward=... to continue "
                         "the network from the site")
    rows: list[dict[str, float]] = []
    for k in ks:
        if not 0 <= k <= basis.shape[1]:
            raise ValueError(f"k={k} outside [0, {basis.shape[1]}]")
        proj = project_top_k(flat, basis, mean, int(k))  # (n, d)
        row: dict[str, float] = {"k": float(k)}
        if observables:
            assert forward is not None
            out = forward(proj.reshape(shape))
            for name, fn in observables.items():
                row[name] = float(fn(out))
        for name, labels in (levels or {}).items():
            row[f"probe:{name}"] = float(probe_score(proj, labels))
        rows.append(row)
    return rows


def model_forward(model: Any, site: str, *, dtype: Any = None) -> Callable[[np.ndarray],
                                                                              np.ndarray]:
    """Wrap ``model.forward_from(site, h)`` (HookedModel contract) as numpy -> numpy."""
    import torch

    def fwd(z: np.ndarray) -> np.ndarray:
        ref = next(model.parameters())
        t = torch.as_tensor(z, dtype=dtype or ref.dtype, device=ref.device)
        with torch.no_grad():
            return model.forward_from(site, t).detach().cpu().numpy()

    return fwd
