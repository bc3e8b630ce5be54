"""Coarse-grain one site end to end: spectrum, cutoff, relevance per latent level,
faithfulness curve (and Bayesian renormalisation for the Fisher scheme), written to disk.

Kernel schemes (ntk, ck, fisher) give sample-space modes U ``(n, r)``; to project the site
they are mapped to feature space by V = orth((H − μ)ᵀ U) (Gram–Schmidt in eigenvalue
order): the feature directions whose scores reproduce the top kernel modes. For the
uncentred conjugate kernel K = HHᵀ/d this is exactly (uncentred) PCA.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tmr.rg.spectral import (
    PCAScheme,
    conjugate_kernel,
    faithfulness_curve,
    ridge_probe_accuracy,
    selectivity_scorer,
)
from tmr.rg.spectrum import (
    alignment_relevance,
    cutoff_for_budget,
    eigh_desc,
    power_law_fit,
    spectral_gaps,
    tail_fraction,
)

SCHEMES = ("pca", "ntk", "ck", "fisher")
# Relative eigenvalue below which kernel modes count as numerically zero.
KERNEL_RANK_TOL = 1e-10
# Fisher directions kept for the Bayesian sweep: V is (P, k) float64, so 128 modes of a
# 72k-parameter net is 74 MB, where all 512 would be the size of the full Jacobian.
BAYES_MAX_MODES = 128


@dataclass
class CoarseGrainReport:
    """What ``coarse_grain_site`` computed; ``paths`` lists the files written."""

    scheme: str
    eigvals: np.ndarray  # (r,)
    k: int
    summary: dict[str, Any]
    faithfulness: list[dict[str, float]]
    bayes: list[dict[str, float]] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)


def _feature_modes(hc: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Orthonormal ``(d, r)`` from (H − μ)ᵀ U, columns kept in order (QR = Gram–Schmidt)."""
    q, r = np.linalg.qr(hc.T @ u)
    return q * np.sign(np.where(np.diag(r) == 0, 1.0, np.diag(r)))


def _ladder(r: int, k_budget: int) -> list[int]:
    """Kept-mode counts r, …, 8, 4, 2, 1, 0 plus the budget cutoff, decreasing."""
    ks = {0, r, k_budget}
    p = 1
    while p < r:
        ks.add(p)
        p *= 2
    return sorted(ks, reverse=True)


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def coarse_grain_site(
    h: np.ndarray,
    *,
    scheme: str,
    budget: float,
    out_dir: str | Path,
    levels: Mapping[str, np.ndarray] | None = None,
    forward: Callable[[np.ndarray], np.ndarray] | None = None,
    target: np.ndarray | None = None,
    model: Any = None,
    x: Any = None,
    sample_chunk: int = 64,
    param_chunk: int = 1 << 14,
    plots: bool = True,
    input_keys: np.ndarray | None = None,
    ks: Sequence[int] | None = None,
) -> CoarseGrainReport:
    """Spectral coarse-graining of one site with a variance/error ``budget``.

    Args:
        h: site activations ``(n, *site_shape)``.
        scheme: ``pca`` | ``ck`` (activations only) | ``ntk`` | ``fisher`` (need ``model``
            and its inputs ``x``; ``fisher`` also ``target``, the task labels).
        budget: discarded spectral fraction allowed; k = smallest with tail ≤ budget.
        out_dir: directory for spectrum.csv, modes.npz, faithfulness.csv, summary.json
            (and bayes.csv for fisher, spectrum.png / faithfulness.png with ``plots``).
        levels: latent level name -> labels ``(n,)``: per-mode alignment and probe curves.
        forward: continue the network from the site (``model_forward(model, site)``);
            gives the output observables (agreement with the full prediction, mse to the
            full output, task accuracy when ``target`` is given).
        input_keys: the inputs ``(n, ...)``; when given, probe columns are selectivities
            (accuracy minus control-task accuracy), otherwise held-out accuracies.
        ks: kept-mode counts of the faithfulness curve (default r, …, 4, 2, 1, 0); the
            budget cutoff is always added, counts outside [0, r] are dropped.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme={scheme!r}: use one of {SCHEMES}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    flat = np.asarray(h, dtype=np.float64).reshape(len(h), -1)  # (n, d)
    n, d = flat.shape
    levels = dict(levels or {})
    bayes: list[dict[str, float]] = []
    if scheme == "pca":
        cg = PCAScheme()(flat, d)
        mean, basis, vals = cg.meta["mean"], cg.modes, cg.meta["eigvals"]  # (d,), (d, d)
        scores = cg.coarse  # (n, d)
    else:
        if scheme == "ck":
            kmat, mean = conjugate_kernel(flat), np.zeros(d)
        else:
            import torch

            from tmr.rg.jacobian import empirical_ntk, fisher_rows

            if model is None or x is None:
                raise ValueError(f"scheme={scheme!r} needs the model and its inputs x")
            mean = flat.mean(axis=0)
            xt = torch.as_tensor(x)
            if scheme == "ntk":
                kmat = empirical_ntk(model, xt, sample_chunk=sample_chunk,
                                     param_chunk=param_chunk)
            else:
                if target is None:
                    raise ValueError("scheme='fisher' needs target (the task labels)")
                yt = torch.as_tensor(np.asarray(target))
                kmat = np.zeros((n, n))
                for _, _, s in fisher_rows(model, xt, yt, likelihood="categorical",
                                           kind="empirical", sample_chunk=sample_chunk,
                                           param_chunk=param_chunk):
                    kmat += (s @ s.T).cpu().numpy()
        vals, u = eigh_desc(kmat)  # (n,), (n, n)
        rank = int((vals > KERNEL_RANK_TOL * max(vals[0], 1e-300)).sum())
        vals, u = vals[:rank], u[:, :rank]  # the whole non-zero kernel spectrum
        # a site of width d can only carry the first min(rank, d) modes
        basis = _feature_modes(flat - mean, u[:, :min(rank, d)])  # (d, r)
        scores = u
        if scheme == "fisher":
            bayes = _bayes_rows(model, x, target, sample_chunk, param_chunk)
    k = cutoff_for_budget(vals, budget)
    fit = power_law_fit(vals) if (vals > 0).sum() >= 2 else None
    ratios, cliffs = spectral_gaps(vals, top=5)
    frac = tail_fraction(vals)
    spectrum_rows = []
    align = {name: alignment_relevance(scores, lab) for name, lab in levels.items()}
    for j, lam in enumerate(vals):
        row: dict[str, Any] = {"rank": j + 1, "eigenvalue": float(lam),
                               "tail_fraction": float(frac[j + 1]),
                               "gap_ratio": float(ratios[j]) if j < ratios.size else ""}
        for name, a in align.items():
            row[f"align:{name}"] = float(a[j])
        spectrum_rows.append(row)
    observables: dict[str, Callable[[np.ndarray], float]] = {}
    if forward is not None:
        full = forward(np.asarray(h))
        observables["agreement"] = lambda o: float((o.argmax(1) == full.argmax(1)).mean())
        observables["mse_to_full"] = lambda o: float(((o - full) ** 2).mean())
        if target is not None:
            tgt = np.asarray(target)
            observables["accuracy"] = lambda o: float((o.argmax(1) == tgt).mean())
    k_site = min(k, basis.shape[1])
    scorer = (selectivity_scorer(input_keys) if input_keys is not None
              else ridge_probe_accuracy)
    r_site = basis.shape[1]
    ladder = (_ladder(r_site, k_site) if ks is None
              else sorted({k_site, *(int(k) for k in ks if 0 <= int(k) <= r_site)},
                          reverse=True))
    rows = faithfulness_curve(np.asarray(h), basis, mean, ladder,
                              forward=forward, observables=observables, levels=levels,
                              probe_score=scorer)
    summary = {"scheme": scheme, "n": n, "d": d, "budget": budget, "k": k, "k_site": k_site,
               "n_modes": int(vals.size), "n_site_modes": int(basis.shape[1]),
               "power_law_alpha": fit.alpha if fit else None,
               "power_law_r2": fit.r2 if fit else None,
               "cliffs": [int(c) for c in cliffs],
               "probe_metric": "selectivity" if input_keys is not None else "accuracy",
               "top_mode_per_level": {name: int(np.argmax(a)) + 1 for name, a in align.items()}}
    paths = [out / "spectrum.csv", out / "faithfulness.csv", out / "summary.json",
             out / "modes.npz"]
    _write_csv(paths[0], spectrum_rows)
    _write_csv(paths[1], rows)
    paths[2].write_text(json.dumps(summary, indent=2))
    np.savez(paths[3], eigvals=vals, kept=basis[:, :k_site], tail=basis[:, k_site:], mean=mean)
    if bayes:
        paths.append(out / "bayes.csv")
        _write_csv(paths[-1], bayes)
    if plots:
        paths += _plot(out, vals, k, fit, rows)
    return CoarseGrainReport(scheme=scheme, eigvals=vals, k=k, summary=summary,
                             faithfulness=rows, bayes=bayes, paths=paths)


def _bayes_rows(model: Any, x: Any, target: Any, sample_chunk: int,
                param_chunk: int) -> list[dict[str, float]]:
    """Bayesian renormalisation sweep with the mean cross-entropy as the loss."""
    import torch

    from tmr.rg.jacobian import bayesian_renormalisation, fisher_eigen

    xt, yt = torch.as_tensor(x), torch.as_tensor(np.asarray(target)).long()
    vals, vecs = fisher_eigen(model, xt, yt, likelihood="categorical", kind="empirical",
                              k=BAYES_MAX_MODES, sample_chunk=sample_chunk, param_chunk=param_chunk)

    def loss(m: Any) -> float:
        with torch.no_grad():
            return float(torch.nn.functional.cross_entropy(m(xt), yt))

    return bayesian_renormalisation(model, loss, vals, vecs, _ladder(vals.size, vals.size))


def _plot(out: Path, vals: np.ndarray, k: int, fit: Any,
          rows: list[dict[str, float]]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranks = np.arange(1, vals.size + 1)
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.loglog(ranks, np.maximum(vals, 1e-300), ".", label="eigenvalues")
    if fit is not None:
        ax.loglog(ranks, fit.amplitude * ranks ** -fit.alpha, "--",
                  label=f"fit α={fit.alpha:.2f}")
    ax.axvline(max(k, 1), color="k", lw=0.8, label=f"cutoff k={k}")
    ax.set_xlabel("rank")
    ax.set_ylabel("eigenvalue")
    ax.legend(fontsize=7)
    fig.tight_layout()
    p1 = out / "spectrum.png"
    fig.savefig(p1, dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ks = [r["k"] for r in rows]
    for name in rows[0]:
        if name not in ("k", "mse_to_full"):
            ax.plot(ks, [r[name] for r in rows], "o-", ms=3, label=name)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("kept modes k")
    ax.set_ylabel("observable")
    ax.legend(fontsize=7)
    fig.tight_layout()
    p2 = out / "faithfulness.png"
    fig.savefig(p2, dpi=120)
    plt.close(fig)
    return [p1, p2]


def coarse_grain_run(run_dir: str | Path, *, site: str, scheme: str, budget: float,
                     out_dir: str | Path | None = None, n_samples: int = 512,
                     split: str = "test", target_level: str | None = None,
                     step: int | None = None, plots: bool = True,
                     ks: Sequence[int] | None = None) -> CoarseGrainReport:
    """``coarse_grain_site`` on a trained run (through ``tmr.train.load_run``,
    ``tmr.hooks.run_with_cache``, ``tmr.io.read``).

    Levels with several positions per sample are probed at their first position. The task
    target (for accuracy and the Fisher) is ``target_level`` (default: the root level).
    Output goes to ``RUN_DIR/coarse_grain/<site>_<scheme>`` unless ``out_dir`` is given.
    """
    import torch

    from tmr import io
    from tmr.hooks import run_with_cache
    from tmr.rg.spectral import model_forward
    from tmr.train import load_run

    model, _, data_path = load_run(run_dir, step=step)
    model.eval()
    if site not in getattr(model, "sites", (site,)):
        raise ValueError(f"site={site!r} is not one of the model's sites {model.sites}")
    sample, _ = io.read(data_path, split)
    n = min(n_samples, len(sample.x))
    x = torch.as_tensor(np.asarray(sample.x[:n]))
    levels = {}
    for name, lev in zip(sample.level_names, sample.levels, strict=True):
        arr = np.asarray(lev[:n]).reshape(n, -1)  # (n, n_positions)
        levels[name] = arr[:, 0]
    target_name = target_level or sample.level_names[0]
    if target_name not in levels:
        raise ValueError(f"target_level={target_name!r} not in {list(levels)}")
    with torch.no_grad():
        _, cache = run_with_cache(model, x, names=[site])
    h = cache[site].detach().cpu().numpy()  # (n, *site_shape)
    out = Path(out_dir) if out_dir else Path(run_dir) / "coarse_grain" / f"{site}_{scheme}"
    return coarse_grain_site(h, scheme=scheme, budget=budget, out_dir=out, levels=levels,
                             forward=model_forward(model, site), target=levels[target_name],
                             model=model, x=x, plots=plots, input_keys=x.cpu().numpy(), ks=ks)
