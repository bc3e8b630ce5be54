"""Chunked per-sample Jacobians: empirical NTK, empirical/expected Fisher, Bayesian RG.

Empirical NTK (Jacot et al. 2018): Θ(x_i, x_j) = J_i J_jᵀ with J_i = ∂f(x_i)/∂θ ``(c, P)``;
``output="trace"`` returns Σ_c over the output index (``(n, n)``), ``"full"`` the
``(n·c, n·c)`` matrix. Computed as Θ = Σ_chunks J^(p) J^(p)ᵀ over parameter chunks p,
each J^(p) ``(n, c, P_p)`` filled sample chunk by sample chunk with
``torch.func.vmap(jacrev(...))``, so peak memory is about
n·c·param_chunk + sample_chunk·c·(largest parameter tensor) floats (plus Θ itself): the
full n×c×P Jacobian is never materialised. Products J^(p) J^(p)ᵀ are taken in the model's
dtype and summed over chunks in float64.

Fisher (sum convention, as in the negative log-likelihood Σ_i −log p(y_i|x_i,θ)):
empirical F = Σ_i s_i s_iᵀ with scores s_i = ∇_θ log p(y_i|x_i,θ); expected
F = Σ_i J_iᵀ L_i J_i with L_i = −∂²log p/∂f² (Gaussian: I/σ², categorical:
diag(p) − ppᵀ). For the linear-Gaussian model f = Xθ the expected Fisher is XᵀX/σ².
With S the stacked rows (scores, or L_i^{1/2} J_i), F = SᵀS and the Gram G = S Sᵀ share
their non-zero spectrum; top eigenvectors of F are V = Sᵀ U Λ^{−1/2} (G = UΛUᵀ).

Bayesian renormalisation (Berman, Klinger & Stapleton 2023): keep the top-k Fisher
directions, θ_k = c + V_k V_kᵀ (θ − c), and record the loss change. Near a minimum of a
quadratic loss with Hessian F the change is ½ Σ_{j>k} λ_j (v_jᵀ(θ − c))².
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

ChunkSpec = list[tuple[int, int, int]]  # (tensor index, flat start, flat stop)
Likelihood = Literal["gaussian", "categorical"]

DEFAULT_SAMPLE_CHUNK = 64
DEFAULT_PARAM_CHUNK = 1 << 14


def _trainable(model: nn.Module) -> tuple[list[str], list[torch.Tensor]]:
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model has no trainable parameters")
    return [n for n, _ in named], [p.detach() for _, p in named]


def param_chunks(sizes: Sequence[int], param_chunk: int) -> list[ChunkSpec]:
    """Split tensors of ``sizes`` into contiguous chunks of at most ``param_chunk`` entries."""
    if param_chunk < 1:
        raise ValueError(f"param_chunk={param_chunk} must be a positive number of parameters")
    chunks: list[ChunkSpec] = []
    cur: ChunkSpec = []
    room = param_chunk
    for ti, size in enumerate(sizes):
        start = 0
        while start < size:
            take = min(room, size - start)
            cur.append((ti, start, start + take))
            start += take
            room -= take
            if room == 0:
                chunks.append(cur)
                cur, room = [], param_chunk
    if cur:
        chunks.append(cur)
    return chunks


def jacobian_blocks(
    model: nn.Module,
    x: torch.Tensor,
    *,
    per_sample: Callable[[dict[str, torch.Tensor], torch.Tensor, torch.Tensor | None],
                         torch.Tensor] | None = None,
    y: torch.Tensor | None = None,
    sample_chunk: int = DEFAULT_SAMPLE_CHUNK,
    param_chunk: int = DEFAULT_PARAM_CHUNK,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield ``(start, stop, J)`` over parameter chunks; J ``(n, c, stop − start)``.

    ``start:stop`` indexes the flattened trainable parameters (``named_parameters`` order).
    ``per_sample(params, x_i, y_i)`` gives the per-sample output to differentiate (default:
    the model output for the single sample ``x_i``), flattened to ``c`` entries.
    """
    if sample_chunk < 1:
        raise ValueError(f"sample_chunk={sample_chunk} must be a positive number of samples")
    names, tensors = _trainable(model)
    shapes = [t.shape for t in tensors]
    flats = [t.reshape(-1) for t in tensors]
    buffers = dict(model.named_buffers())
    n = x.shape[0]

    def default(params: dict[str, torch.Tensor], xi: torch.Tensor,
                yi: torch.Tensor | None) -> torch.Tensor:
        return functional_call(model, (params, buffers), (xi.unsqueeze(0),))

    fn = per_sample or default
    offsets = np.concatenate([[0], np.cumsum([f.numel() for f in flats])])
    for spec in param_chunks([f.numel() for f in flats], param_chunk):
        sliced = {ti: (a, b) for ti, a, b in spec}
        order = [ti for ti, _, _ in spec]

        def f(slices: tuple[torch.Tensor, ...], xi: torch.Tensor, yi: torch.Tensor | None,
              sliced: dict[int, tuple[int, int]] = sliced,
              order: list[int] = order) -> torch.Tensor:
            by_ti = dict(zip(order, slices, strict=True))
            params = {}
            for i, name in enumerate(names):
                if i in by_ti:
                    a, b = sliced[i]
                    full = torch.cat([flats[i][:a], by_ti[i], flats[i][b:]])
                    params[name] = full.view(shapes[i])
                else:
                    params[name] = tensors[i]
            return fn(params, xi, yi).reshape(-1)

        slices = tuple(flats[ti][a:b] for ti, a, b in spec)
        jac_fn = vmap(jacrev(f), in_dims=(None, 0, None if y is None else 0))
        start = int(offsets[spec[0][0]] + spec[0][1])
        stop = int(offsets[spec[-1][0]] + spec[-1][2])
        buf: torch.Tensor | None = None  # (n, c, stop - start), filled in place
        for s in range(0, n, sample_chunk):
            ys = None if y is None else y[s:s + sample_chunk]
            jac = jac_fn(slices, x[s:s + sample_chunk], ys)  # tuple of (m, c, len)
            if buf is None:
                buf = torch.empty((n, jac[0].shape[1], stop - start), dtype=jac[0].dtype,
                                  device=jac[0].device)
            col = 0
            for part in jac:
                buf[s:s + sample_chunk, :, col:col + part.shape[-1]] = part.detach()
                col += part.shape[-1]
            del jac
        assert buf is not None
        yield start, stop, buf


def empirical_ntk(model: nn.Module, x: torch.Tensor, *, output: Literal["trace", "full"] = "trace",
                  sample_chunk: int = DEFAULT_SAMPLE_CHUNK,
                  param_chunk: int = DEFAULT_PARAM_CHUNK) -> np.ndarray:
    """Empirical NTK Θ = J Jᵀ, ``(n, n)`` (trace over outputs) or ``(n·c, n·c)`` (full), float64."""
    if output not in ("trace", "full"):
        raise ValueError(f"output={output!r}: use 'trace' or 'full'")
    theta: torch.Tensor | None = None
    for _, _, jac in jacobian_blocks(model, x, sample_chunk=sample_chunk,
                                     param_chunk=param_chunk):
        # products in the Jacobian's own dtype (float32 J is only float32-accurate anyway),
        # accumulated over parameter chunks in float64
        if output == "trace":
            block = sum(jac[:, c, :] @ jac[:, c, :].T for c in range(jac.shape[1]))  # (n, n)
        else:
            flat = jac.reshape(-1, jac.shape[-1])  # (n*c, p)
            block = flat @ flat.T
        del jac
        block = torch.as_tensor(block).double()
        theta = block if theta is None else theta + block
    assert theta is not None
    return theta.cpu().numpy()


def _log_lik(likelihood: Likelihood, out: torch.Tensor, y: torch.Tensor,
             sigma: float) -> torch.Tensor:
    """log p(y | f) up to a constant: Gaussian −‖y−f‖²/(2σ²); categorical log softmax(f)_y."""
    if likelihood == "gaussian":
        return -((y.reshape(out.shape) - out) ** 2).sum() / (2.0 * sigma ** 2)
    logp = torch.log_softmax(out.reshape(-1), dim=-1)  # (c,)
    return torch.gather(logp, 0, y.long().reshape(1))  # vmap-safe indexing


def _sqrt_output_hessian(likelihood: Likelihood, out: torch.Tensor,
                         sigma: float) -> torch.Tensor:
    """L_i^{1/2}, ``(n, c, c)``: I/σ (Gaussian) or sqrt(diag(p) − ppᵀ) (categorical)."""
    n, c = out.shape
    if likelihood == "gaussian":
        return torch.eye(c, dtype=out.dtype, device=out.device).expand(n, c, c) / sigma
    p = torch.softmax(out, dim=-1)  # (n, c)
    lmat = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]  # (n, c, c)
    vals, vecs = torch.linalg.eigh(lmat)
    return vecs @ torch.diag_embed(vals.clamp_min(0).sqrt()) @ vecs.transpose(1, 2)


def fisher_rows(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *,
                likelihood: Likelihood = "gaussian", kind: Literal["empirical",
                                                                  "expected"] = "expected",
                sigma: float = 1.0, sample_chunk: int = DEFAULT_SAMPLE_CHUNK,
                param_chunk: int = DEFAULT_PARAM_CHUNK
                ) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield ``(start, stop, S_chunk)`` with F = SᵀS; S rows: scores (empirical, ``(n, p)``)
    or L_i^{1/2} J_i (expected, ``(n·c, p)``)."""
    if likelihood not in ("gaussian", "categorical"):
        raise ValueError(f"likelihood={likelihood!r}: use 'gaussian' or 'categorical'")
    if sigma <= 0:
        raise ValueError(f"sigma={sigma} must be positive")
    if kind == "empirical":
        if y is None:
            raise ValueError("the empirical Fisher needs targets y (scores use observed labels)")
        buffers = dict(model.named_buffers())

        def score(params: dict[str, torch.Tensor], xi: torch.Tensor,
                  yi: torch.Tensor | None) -> torch.Tensor:
            out = functional_call(model, (params, buffers), (xi.unsqueeze(0),)).reshape(-1)
            assert yi is not None
            return _log_lik(likelihood, out, yi, sigma)

        for a, b, jac in jacobian_blocks(model, x, per_sample=score, y=y,
                                         sample_chunk=sample_chunk, param_chunk=param_chunk):
            yield a, b, jac[:, 0, :].double()  # (n, p)
        return
    if kind != "expected":
        raise ValueError(f"kind={kind!r}: use 'empirical' or 'expected'")
    with torch.no_grad():
        out = model(x).reshape(x.shape[0], -1).double()  # (n, c)
    half = _sqrt_output_hessian(likelihood, out, sigma)  # (n, c, c)
    for a, b, jac in jacobian_blocks(model, x, sample_chunk=sample_chunk,
                                     param_chunk=param_chunk):
        rows = torch.einsum("nab,nbp->nap", half, jac.double())  # (n, c, p)
        yield a, b, rows.reshape(-1, rows.shape[-1])


def fisher_matrix(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None,
                  **kwargs: object) -> np.ndarray:
    """Full Fisher F = SᵀS ``(P, P)`` (small models only; see ``fisher_eigen`` otherwise)."""
    blocks = [(a, b, s) for a, b, s in fisher_rows(model, x, y, **kwargs)]  # type: ignore[arg-type]
    s_full = torch.cat([s for _, _, s in blocks], dim=1)  # (m, P)
    return (s_full.T @ s_full).cpu().numpy()


def fisher_eigen(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *,
                 k: int | None = None, **kwargs: object) -> tuple[np.ndarray, np.ndarray]:
    """Top-k eigenvalues ``(k,)`` and eigenvectors ``(P, k)`` of F via the Gram G = S Sᵀ.

    Two chunked passes: G = Σ_p S_p S_pᵀ, then V_p = S_pᵀ U_k Λ_k^{−1/2} per chunk.
    """
    gram: torch.Tensor | None = None
    for _, _, s in fisher_rows(model, x, y, **kwargs):  # type: ignore[arg-type]
        gram = s @ s.T if gram is None else gram + s @ s.T
    assert gram is not None
    vals, vecs = torch.linalg.eigh(gram)
    order = torch.argsort(vals, descending=True)
    vals, vecs = vals[order].clamp_min(0), vecs[:, order]
    floor = 1e-12 * float(vals[0]) if vals.numel() else 0.0
    rank = int((vals > floor).sum())
    k = rank if k is None else min(k, rank)
    u = vecs[:, :k] / vals[:k].sqrt()  # (m, k)
    parts = [s.T @ u for _, _, s in fisher_rows(model, x, y, **kwargs)]  # type: ignore[arg-type]
    return vals[:k].cpu().numpy(), torch.cat(parts, dim=0).cpu().numpy()


def flat_params(model: nn.Module) -> np.ndarray:
    """Trainable parameters flattened in ``named_parameters`` order, ``(P,)`` float64."""
    _, tensors = _trainable(model)
    return torch.cat([t.reshape(-1) for t in tensors]).double().cpu().numpy()


def loss_with_params(model: nn.Module, theta: np.ndarray,
                     loss: Callable[[nn.Module], float]) -> float:
    """``loss(model)`` evaluated with the trainable parameters set to ``theta`` ``(P,)``."""
    names, tensors = _trainable(model)
    sizes = [t.numel() for t in tensors]
    if theta.size != sum(sizes):
        raise ValueError(f"theta has {theta.size} entries; the model has {sum(sizes)}")
    params = dict(model.named_parameters())
    saved = [params[n].detach().clone() for n in names]
    try:
        with torch.no_grad():
            start = 0
            for name, t in zip(names, tensors, strict=True):
                chunk = theta[start:start + t.numel()].reshape(t.shape)
                params[name].copy_(torch.as_tensor(chunk, dtype=t.dtype, device=t.device))
                start += t.numel()
        return float(loss(model))
    finally:
        with torch.no_grad():
            for name, s in zip(names, saved, strict=True):
                params[name].copy_(s)


def bayesian_renormalisation(model: nn.Module, loss: Callable[[nn.Module], float],
                             eigvals: np.ndarray, eigvecs: np.ndarray, ks: Sequence[int], *,
                             centre: np.ndarray | None = None) -> list[dict[str, float]]:
    """Loss after projecting θ onto the top-k Fisher directions, for each k.

    Rows: k, loss, delta_loss = loss(θ_k) − loss(θ), and quadratic = ½ Σ_{j>k} λ_j
    (v_jᵀ(θ − c))² over the supplied modes (the prediction near a quadratic minimum).
    """
    theta = flat_params(model)  # (P,)
    c = np.zeros_like(theta) if centre is None else np.asarray(centre, dtype=np.float64)
    v = np.asarray(eigvecs, dtype=np.float64)  # (P, r)
    coef = v.T @ (theta - c)  # (r,)
    base = float(loss(model))
    rows = []
    for k in ks:
        if not 0 <= k <= v.shape[1]:
            raise ValueError(f"k={k} outside [0, {v.shape[1]}] available Fisher modes")
        theta_k = c + v[:, :k] @ coef[:k]
        new = loss_with_params(model, theta_k, loss)
        quad = 0.5 * float((np.asarray(eigvals)[k:] * coef[k:] ** 2).sum())
        rows.append({"k": float(k), "loss": new, "delta_loss": new - base, "quadratic": quad})
    return rows
