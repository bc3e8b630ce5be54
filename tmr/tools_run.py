"""``tmr evaluate-tools``: fit tools on one site of a trained run and score them.

SAEs train on the site's activations over the run's training split (at most ``n_train``
rows) with the run's ``sae`` seed stream (one child per tool, width and seed index) and
are saved to ``RUN/tools/<site>/``; every tool is then scored on the probe sample (the
run's ``probe.split``, at most ``n_eval`` rows) with ``tmr.tools.score_features``. The
table goes to ``RUN/tools/<site>/tool_scores.csv`` and the figures beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tmr.metrics.features import latent_indicators
from tmr.tools import (
    NTK_SAMPLES,
    PLANTED_PREFIX,
    SAE_TOOLS,
    TOOLS,
    Progress,
    ToolFeatures,
    canonicity_rows,
    planted_rows,
    score_features,
    write_rows,
)

CAPTURE_BATCH = 4096


@dataclass
class SiteData:
    """What the tools need from a run at one site."""

    model: torch.nn.Module
    site: str
    h_train: np.ndarray  # (n_train, d) float32
    h_eval: np.ndarray  # (n_eval, *site_shape) float64
    x_eval: torch.Tensor  # model inputs of the evaluation samples
    levels: dict[str, np.ndarray]  # name -> (n_eval, P) int, planted variables included
    level_order: list[str]
    target: np.ndarray | None  # (n_eval,) task labels (root / level tasks)
    sae_seed: np.random.SeedSequence
    tools_dir: Path
    # planted ground truth of the evaluation samples {name: (n_eval,) or (n_eval, P)} and the
    # site's activations with each variable changed by intervention {name: like h_eval}
    planted: dict[str, np.ndarray] = field(default_factory=dict)
    counterfactual: dict[str, np.ndarray] = field(default_factory=dict)


def _capture(model: torch.nn.Module, x: torch.Tensor, site: str) -> np.ndarray:
    from tmr.hooks import capture_site

    return capture_site(model, x, site, batch=CAPTURE_BATCH)[1]


def load_site(run_dir: str | Path, site: str, *, n_train: int = 100_000, n_eval: int = 4096,
              step: int | None = None, per_token: bool = False) -> SiteData:
    """Activations, latents and task labels of ``site`` in a ``train-and-probe`` run.

    ``per_token``: a sequence site ``(n, T, d)`` is read as n·T rows of width d (the usual
    transformer SAE); levels with T positions become one label per token, per-sample levels
    (one position) are repeated over the tokens, other levels are left out.

    Data with planted variables (aux ``planted_*``) also give ``planted`` and, where the
    data file records its planted modes, the ``counterfactual`` activations
    (``tmr.planted.counterfactual_inputs``); not with ``per_token``.
    """
    from generators import stream, streams
    from tmr.bounds.run import _data_path
    from tmr.probe_targets import aux_level, probe_levels
    from tmr.train import SEED_STREAMS, load_run
    from tmr.train.data_adapter import _targets, adapt_x, prepare_task

    run = Path(run_dir)
    if not (run / "config.json").is_file():
        raise ValueError(f"{str(run)!r} is not a training run (no config.json); give a "
                         f"directory written by `tmr train-and-probe`")
    if n_train <= 0 or n_eval <= 0:
        raise ValueError(f"n_train={n_train}, n_eval={n_eval}: give positive sample counts")
    model, cfg, data_path = load_run(run, step)
    sites = list(getattr(model, "sites", ()))
    if site not in sites:
        raise ValueError(f"unknown site {site!r}; this run's model has the sites {sites}")
    if per_token and cfg.model.kind != "transformer":
        raise ValueError(f"--per-token reads sites as (tokens, width); it is for transformer "
                         f"runs, this run's model is a {cfg.model.kind}")
    model = model.eval()
    seeds = streams(cfg.seed, *SEED_STREAMS)
    data = prepare_task(str(_data_path(run, data_path)), cfg.task, cfg.data, cfg.probe,
                        seeds["split"])
    x_eval, raw_levels, _ = data.probe_inputs()
    x_eval = x_eval[:n_eval]
    sample = data.probe_sample[np.arange(len(x_eval))]
    levels = probe_levels({k: np.asarray(v)[:len(x_eval)] for k, v in raw_levels.items()})
    for name, arr in sorted(sample.aux.items()):
        if name.startswith(PLANTED_PREFIX):
            levels["planted." + name[len(PLANTED_PREFIX):]] = aux_level(np.asarray(arr), 4)
            levels.pop("aux." + name, None)  # the run's own probe of it: scored once
    target = None
    if cfg.task.kind in ("root", "level"):
        y = _targets(sample, x_eval, cfg.task, data.data_vocab).numpy()
        target = y if y.ndim == 1 else None
    h_train = _capture(model, data.x_train[:n_train], site)
    h_eval = _capture(model, x_eval, site).astype(np.float64)
    if per_token:
        if h_eval.ndim != 3:
            raise ValueError(f"--per-token needs a sequence site (T, d) per sample; {site!r} "
                             f"has shape {tuple(h_eval.shape[1:])} per sample")
        n, t = h_eval.shape[:2]
        levels = {k: (v.reshape(n * t, 1) if v.shape[1] == t else np.repeat(v, t, axis=0))
                  for k, v in levels.items() if v.shape[1] in (1, t)}
        h_train = h_train.reshape(-1, h_train.shape[-1])
    h_train = h_train.reshape(len(h_train), -1).astype(np.float32)
    truth: dict[str, np.ndarray] = {}
    counter: dict[str, np.ndarray] = {}
    if not per_token:
        from tmr import planted

        names = tuple(k[len(PLANTED_PREFIX):] for k in sorted(sample.aux)
                      if k.startswith(PLANTED_PREFIX))
        truth = planted.planted_targets(sample.aux, names)
        if truth and (sample.meta or {}).get("planted"):
            for name, xc in planted.counterfactual_inputs(sample).items():
                counter[name] = _capture(model, adapt_x(xc, data.data_vocab),
                                         site).astype(np.float64)
    return SiteData(model=model, site=site, h_train=h_train, h_eval=h_eval, x_eval=x_eval,
                    levels=levels, level_order=list(levels), target=target,
                    sae_seed=stream(cfg.seed, "sae"), tools_dir=run / "tools" / site,
                    planted=truth, counterfactual=counter)


def _child(ss: np.random.SeedSequence, *key: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, *key))


def fit_tools(sd: SiteData, tools: Sequence[str], widths: Sequence[int], seeds: Sequence[int],
              *, k: int = 16, epochs: int = 3, min_steps: int = 250, device: str = "cpu",
              progress: Progress | None = None) -> list[ToolFeatures]:
    """Fit every tool: SAEs at every width and seed (Matryoshka once per seed at the widest
    width, its prefixes being the other widths and the widest halved down to k), PCA and
    ntk once."""
    from tmr import sae as S
    from tmr.rg.spectral import PCAScheme

    out: list[ToolFeatures] = []
    flat_eval = sd.h_eval.reshape(-1, sd.h_train.shape[1])  # (rows, d): samples or tokens
    jobs: list[tuple[str, int, int]] = []
    for tool in tools:
        if tool in SAE_TOOLS:
            ws = [max(widths)] if tool == "matryoshka" else list(widths)
            jobs += [(tool, w, s) for w in ws for s in seeds]
        else:
            jobs.append((tool, 0, 0))
    for done, (tool, width, seed) in enumerate(jobs):
        if progress is not None:
            progress("fit tools", done, len(jobs))
        if tool in SAE_TOOLS:
            kind = S.tool_kind(tool)
            prefixes = matryoshka_prefixes(widths, min(k, width)) if kind == "matryoshka" \
                else ()
            cfg = S.SAEConfig(kind=kind, width=width, k=min(k, width), epochs=epochs,
                              min_steps=min_steps, prefixes=prefixes)
            rng = _child(sd.sae_seed, TOOLS.index(tool), width, seed)
            model = S.train_sae(sd.h_train, cfg, np.random.default_rng(rng), device=device)
            S.save_sae(model, sd.tools_dir, seed, {"site": sd.site, "tool": tool,
                                                   "n_train": len(sd.h_train)})
            codes = S.encode(model, flat_eval)
            order = S.feature_order(model, codes)
            dec, off = S.dictionary(model)
            out.append(ToolFeatures(tool, width, seed, codes[:, order], dec[order], off))
        elif tool == "pca":
            cg = PCAScheme()(flat_eval, flat_eval.shape[1])
            out.append(ToolFeatures("pca", cg.modes.shape[1], 0, cg.coarse, cg.modes.T,
                                    cg.meta["mean"]))
        else:
            out.append(_ntk_features(sd, flat_eval))
    if progress is not None:
        progress("fit tools", len(jobs), len(jobs))
    return out


def matryoshka_prefixes(widths: Sequence[int], k: int) -> tuple[int, ...]:
    """The widths, and the widest width halved down to k: the Matryoshka's nested scales."""
    top = max(widths)
    halves = {top >> j for j in range(top.bit_length()) if (top >> j) >= k}
    return tuple(sorted({*widths, *halves}))


def _ntk_features(sd: SiteData, flat_eval: np.ndarray) -> ToolFeatures:
    """Feature-space eNTK modes V = orth((H − μ)ᵀ U) from the first NTK_SAMPLES samples
    (``tmr.rg.report``), scores (H − μ) V on all evaluation samples."""
    from tmr.rg.jacobian import empirical_ntk
    from tmr.rg.report import KERNEL_RANK_TOL, _feature_modes
    from tmr.rg.spectrum import eigh_desc

    n = min(NTK_SAMPLES, len(flat_eval))
    mean = flat_eval[:n].mean(0)
    kmat = empirical_ntk(sd.model, sd.x_eval[:n])
    vals, u = eigh_desc(kmat)
    rank = int((vals > KERNEL_RANK_TOL * max(vals[0], 1e-300)).sum())
    basis = _feature_modes(flat_eval[:n] - mean, u[:, :min(rank, flat_eval.shape[1])])
    return ToolFeatures("ntk", basis.shape[1], 0, (flat_eval - mean) @ basis, basis.T, mean)


def evaluate_tools(run_dir: str | Path, site: str, tools: Sequence[str],
                   widths: Sequence[int] | str, seeds: Sequence[int] = (0,), *, k: int = 16,
                   epochs: int = 3, min_steps: int = 250, n_train: int = 100_000,
                   n_eval: int = 4096, device: str = "auto", plots: bool = True,
                   per_token: bool = False, n_bound: int = 100,
                   progress: Progress | None = None) -> tuple[list[dict[str, Any]], list[Path]]:
    """Fit and score ``tools`` at ``site`` of a run; returns the rows and the files written
    (``tool_scores.csv`` first, then the figures). ``widths``: integers, or text such as
    ``"1x,4x,1024"`` (``Nx`` = N times the site width); ``per_token``: see ``load_site``.
    With planted variables in the data every fit also gets ``tmr.tools.planted_rows`` at
    every scale, the bound certified on the first ``n_bound`` inputs (0: no bounds)."""
    from tmr.tools import parse_tools, parse_widths
    from tmr.train import resolve_device

    parse_tools(",".join(tools))
    text = widths if isinstance(widths, str) else ",".join(str(w) for w in widths)
    parse_widths(text, 1 << 20)  # syntax and signs before loading anything
    if not seeds:
        raise ValueError("seeds is empty: give at least one SAE seed")
    if n_bound < 0:
        raise ValueError(f"n_bound={n_bound}: give 0 (no bounds) or a positive input count")
    dev = str(resolve_device(device))
    if per_token and "ntk" in tools:
        raise ValueError("the ntk tool works per sample (an n × n kernel); drop it with "
                         "--per-token")
    sd = load_site(run_dir, site, n_train=n_train, n_eval=n_eval, per_token=per_token)
    widths = parse_widths(text, sd.h_train.shape[1])
    fitted = fit_tools(sd, tools, widths, seeds, k=k, epochs=epochs, min_steps=min_steps,
                       device=dev, progress=progress)
    from tmr.rg.spectral import model_forward

    forward = model_forward(sd.model, site)
    latents = latent_indicators(sd.levels)
    rows: list[dict[str, Any]] = []
    for i, tf in enumerate(fitted):
        if progress is not None:
            progress("score", i, len(fitted))
        scales = matryoshka_prefixes(widths, min(k, tf.width)) if tf.tool == "matryoshka" \
            else None
        rows += score_features(tf, latents, site=site, h=sd.h_eval, level_order=sd.level_order,
                               forward=forward, target=sd.target, scales=scales)
        if sd.planted:
            rows += planted_rows(tf, sd.h_eval, sd.planted, site=site, model=sd.model,
                                 labels=sd.target, counterfactual=sd.counterfactual,
                                 scales=scales, n_bound=n_bound)
    if progress is not None:
        progress("score", len(fitted), len(fitted))
    rows += canonicity_rows(fitted, site)
    paths = [write_rows(rows, sd.tools_dir / "tool_scores.csv")]
    if plots:
        from tmr.tools_report import figures

        paths += figures(rows, sd.tools_dir)
    return rows, paths
