"""Bounds for a trained run: one site, the tail subspace of an RG scheme, a table per ε and a
plot of bound vs ε (the library behind ``tmr bound``; the maths is in tmr/bounds.py)."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from tmr.bounds import core as B

SCHEMES = ("pca", "sae-relu", "sae-topk", "matryoshka")  # SAEs: saved by tmr evaluate-tools
COLUMNS = ("site", "scheme", "keep", "observable", "n_inputs", "eps", "status", "certified",
           "empirical", "ratio", "relevant_certified", "relevant_empirical", "separation_index",
           "tail_variance_fraction", "tail_natural_scale", "no_flip_certified",
           "relevant_no_flip_certified")
NATURAL = "natural"  # ε token: the median tail fluctuation ‖V_tailᵀ(h − h̄)‖₂ (bounds.natural_scale)


def parse_eps(text: str) -> list[float | str]:
    """'0.1,1,natural,natural*3' → [0.1, 1.0, 'natural', 'natural*3']: numbers, or multiples of
    the site's natural tail scale, resolved by bound_run once the tail basis is known."""
    out: list[float | str] = []
    for tok in (t.strip() for t in text.split(",")):
        if not tok:
            continue
        if tok.startswith(NATURAL):
            _natural_factor(tok)  # validate now
            out.append(tok)
        else:
            try:
                out.append(float(tok))
            except ValueError:
                raise ValueError(f"bad radius {tok!r} in --eps; use numbers, 'natural' or "
                                 f"'natural*C' (C times the median tail fluctuation)") from None
    return out


def _natural_factor(tok: str) -> float:
    rest = tok[len(NATURAL):]
    if rest == "":
        return 1.0
    try:
        factor = float(rest[1:]) if rest.startswith("*") else math.nan
    except ValueError:
        factor = math.nan
    if not (math.isfinite(factor) and factor >= 0):
        raise ValueError(f"bad radius {tok!r}; use 'natural' or 'natural*C' with a number C ≥ 0")
    return factor


def resolve_eps(eps: Sequence[float | str], scale: float) -> list[float]:
    """Numbers stay; 'natural' → scale, 'natural*C' → C·scale."""
    return [_natural_factor(e) * scale if isinstance(e, str) else float(e) for e in eps]


def parse_observable(name: str, labels: np.ndarray) -> B.Observable:
    """'margin' | 'loss' | 'logit:C' against the run's root labels (n,)."""
    if name == "margin":
        return B.margin(labels)
    if name == "loss":
        return B.loss(labels)
    if name.startswith("logit:") and name[6:].isdigit():
        return B.class_logit(int(name[6:]))
    raise ValueError(f"unknown observable {name!r}; use margin, loss or logit:C (class index)")


def _data_path(run_dir: Path, path: Path) -> Path:
    for cand in (path, run_dir / path, run_dir.parent.parent / path):
        if cand.is_file():
            return cand
    raise ValueError(f"data file {str(path)!r} of run {str(run_dir)!r} not found (tried the "
                     f"working directory, the run directory and two levels up)")


def site_activations(run_dir: str | Path, site: str, n: int, *, step: int | None = None
                     ) -> tuple[torch.nn.Module, torch.Tensor, np.ndarray]:
    """(model in eval mode, activations h (n', *site_shape) float64, root labels (n',)) on the
    first n' = min(n, n_test) test inputs of a one-target (task.kind='root') run."""
    from generators import streams
    from tmr.hooks import run_with_cache
    from tmr.train import SEED_STREAMS, load_run
    from tmr.train.data_adapter import prepare_task

    run_dir = Path(run_dir)
    model, cfg, data_path = load_run(run_dir, step)
    if site not in model.sites:
        raise ValueError(f"unknown site {site!r}; this model's sites are {list(model.sites)}")
    seeds = streams(cfg.seed, *SEED_STREAMS)
    data = prepare_task(str(_data_path(run_dir, data_path)), cfg.task, cfg.data, cfg.probe,
                        seeds["split"])
    if data.y_test.ndim != 1:
        raise ValueError(f"tmr bound needs a one-target task (task.kind='root'); this run has "
                         f"targets of shape {tuple(data.y_test.shape[1:])} per input")
    model = model.eval()
    x = data.x_test[:n]
    with torch.no_grad():
        _, cache = run_with_cache(model, x, [site])
    return model, cache[site].double(), data.y_test[:n].numpy()


def bound_run(run_dir: str | Path, site: str, *, scheme: str = "pca", keep: int = 8,
              eps: Sequence[float | str] = (0.1, 1.0, 5.0), observable: str = "margin",
              n_inputs: int = 200, n_pca: int = 2000, step: int | None = None,
              steps: int = B.ATTACK_STEPS, restarts: int = B.ATTACK_RESTARTS
              ) -> tuple[list[dict], B.Separation]:
    """Separation bounds at `site` of a run: the basis comes from `scheme` on the site's
    activations over the first `n_pca` test inputs (top `keep` = relevant, rest = tail); bounds
    are computed for the first `n_inputs` test inputs, observable against their root labels.
    Radii may be 'natural' / 'natural*C': C × the median over those `n_pca` inputs of the
    tail projection ‖V_tailᵀ(h − h̄)‖₂ (bounds.natural_scale). Rows also give, for the margin
    observable, the fraction of inputs whose certified bound is below their margin (the
    subspace provably cannot flip the prediction; NaN for other observables)."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; available: {list(SCHEMES)}")
    model, h, y = site_activations(run_dir, site, max(n_pca, n_inputs), step=step)
    acts = h.reshape(len(h), -1).numpy()  # (n, d)
    if scheme == "pca":
        V_rel, V_tail = B.pca_split(acts[:n_pca], keep)
    else:  # the widest saved SAE of that kind: span of its `keep` kept decoder directions
        from tmr.sae import sae_split

        V_rel, V_tail = sae_split(Path(run_dir) / "tools" / site, scheme, acts[:n_pca], keep)
    labels = y[:n_inputs]
    obs = parse_observable(observable, labels)
    scale = B.natural_scale(acts[:n_pca], V_tail)
    radii = resolve_eps(eps, scale)
    sep = B.separation(model, h[:n_inputs], V_tail, obs, radii, V_relevant=V_rel,
                       acts=acts[:n_pca], site=site, steps=steps, restarts=restarts)
    no_flip = [_no_flip(sep.tail, observable), _no_flip(sep.relevant, observable)]
    rows = [{"site": site, "scheme": scheme, "keep": keep, "observable": observable,
             "n_inputs": len(labels), **r, "tail_natural_scale": scale,
             "no_flip_certified": no_flip[0][i], "relevant_no_flip_certified": no_flip[1][i]}
            for i, r in enumerate(B.table(sep))]
    return rows, sep


def _no_flip(res: B.BoundResult, observable: str) -> list[float]:
    """Per ε, the fraction of inputs with certified bound < margin g0 (NaN unless margin or
    uncertified): inside the ball the predicted class provably stays the same."""
    if observable != "margin" or res.certified is None:
        return [math.nan] * len(res.eps)
    return [float(np.mean(c < res.g0)) for c in res.certified]


def save(rows: list[dict], out_dir: str | Path) -> tuple[Path, Path]:
    """bounds_<site>.csv and bounds_<site>.png (certified and empirical vs ε, tail and
    relevant, log-log) under out_dir."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"bounds_{rows[0]['site']}"
    csv_path, png = out / f"{stem}.csv", out / f"{stem}.png"
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k])
                        for k in COLUMNS})
    e = [r["eps"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for key, style, label in [("certified", "o-", "tail, certified"),
                              ("empirical", "o--", "tail, PGD"),
                              ("relevant_certified", "s-", "relevant, certified"),
                              ("relevant_empirical", "s--", "relevant, PGD")]:
        ax.plot(e, [r[key] for r in rows], style, label=label)
    ax.set(xscale="log", yscale="log", xlabel="ε (ℓ2 radius in the subspace)",
           ylabel=f"max |Δ {rows[0]['observable']}| (mean over inputs)",
           title=f"{rows[0]['site']}: {rows[0]['scheme']} keep {rows[0]['keep']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return csv_path, png
