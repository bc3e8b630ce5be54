"""Sample-complexity curves from a sweep: test error against the number of training
samples P, the P* at which it crosses a threshold, and per-layer synonymic
sensitivity of the trained runs (the RHM study of Cagnetta, Petrini, Tomasini,
Favero & Wyart, PRX 2024; ``docs/studies/rhm_sample_complexity.md``).

Input: ``collected_metrics.csv`` of ``tmr collect`` (one row per run: swept values,
``n_train``, ``test_error`` on the disjoint test set) and the runs themselves.

* :func:`curves` groups runs by setting and averages over seeds at each P.
* :func:`crossing` is the P at which a decreasing error curve first falls to a
  threshold, interpolated linearly in ``log P`` between the bracketing points:
  ``log P* = log P_(i-1) + (e_(i-1) - t) / (e_(i-1) - e_i) * (log P_i - log P_(i-1))``.
  The study's threshold is half the chance error, ``t = (1 - 1/n_c) / 2``.
* :func:`run_sensitivities` computes, for each hidden layer ``k`` of a run and each
  exchanged level ``l``, ``S_(k,l) = <|f_k(x) - f_k(P_l x)|^2> / <|f_k(x) - f_k(y)|^2>``
  (:func:`tmr.metrics.sensitivity.synonymic_sensitivity`) on test inputs.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Crossing", "Curve", "crossing", "curves", "read_rows", "run_sensitivities",
           "run_world_params"]


@dataclasses.dataclass(frozen=True)
class Crossing:
    """``p_star``: the interpolated crossing (NaN unless ``status == "crossed"``);
    ``status``: ``"crossed"``, ``"below_range"`` (already at or below the threshold
    at the smallest P: P* <= that P) or ``"above_range"`` (never reaches it: P* > the
    largest P)."""

    p_star: float
    status: str


@dataclasses.dataclass(frozen=True)
class Curve:
    """Mean and standard deviation over seeds of the test error at each P (sorted)."""

    p: np.ndarray  # (k,) training-set sizes
    mean: np.ndarray  # (k,)
    std: np.ndarray  # (k,)
    count: np.ndarray  # (k,) runs averaged


def crossing(p: Sequence[float], err: Sequence[float], threshold: float) -> Crossing:
    """First P at which ``err`` (sorted by ``p``) falls to ``threshold`` or below,
    interpolated linearly in ``log P`` between the last point above and the first
    point at or below (formula in the module docstring)."""
    ps = np.asarray(p, dtype=float)
    es = np.asarray(err, dtype=float)
    if ps.ndim != 1 or ps.shape != es.shape or len(ps) == 0:
        raise ValueError(f"p {ps.shape} and err {es.shape} must be equal-length 1-D arrays")
    if np.any(ps <= 0) or np.any(np.diff(ps) <= 0):
        raise ValueError("p must be positive and strictly increasing")
    below = np.flatnonzero(es <= threshold)
    if len(below) == 0:
        return Crossing(math.nan, "above_range")
    i = int(below[0])
    if i == 0:
        return Crossing(math.nan, "below_range")
    e0, e1 = es[i - 1], es[i]
    l0, l1 = math.log(ps[i - 1]), math.log(ps[i])
    frac = (e0 - threshold) / (e0 - e1)
    return Crossing(math.exp(l0 + frac * (l1 - l0)), "crossed")


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """Rows of a ``collected_metrics.csv``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{str(path)!r} does not exist; run `tmr collect SWEEP_DIR` first")
    with path.open() as f:
        return list(csv.DictReader(f))


def curves(rows: Iterable[dict[str, Any]], setting_keys: Sequence[str],
           p_key: str = "n_train", value: str = "test_error") -> dict[tuple[str, ...], Curve]:
    """Per setting (the values of ``setting_keys``), ``value`` averaged over the runs
    (seeds) that share a P."""
    groups: dict[tuple[str, ...], dict[float, list[float]]] = defaultdict(
        lambda: defaultdict(list))
    for r in rows:
        groups[tuple(str(r[k]) for k in setting_keys)][float(r[p_key])].append(float(r[value]))
    out = {}
    for key, by_p in groups.items():
        ps = np.array(sorted(by_p))
        vals = [np.asarray(by_p[p]) for p in ps]
        out[key] = Curve(ps, np.array([v.mean() for v in vals]),
                         np.array([v.std() for v in vals]), np.array([len(v) for v in vals]))
    return out


def run_world_params(run_dir: str | Path) -> dict[str, Any]:
    """The generator parameters of a run's data file (``v, n_c, m, s, L``, ...)."""
    from tmr import io

    record = json.loads((Path(run_dir) / "config.json").read_text())
    with io.open_file(record["config"]["data_path"]) as f:
        cfg = io.file_config(f)
    return dataclasses.asdict(cfg.generator)


def run_sensitivities(run_dir: str | Path, *, n_samples: int = 1024, rng: Any = 0
                      ) -> list[dict[str, Any]]:
    """``S_(k,l)`` for every hidden layer site ``k`` (``layers.*.post``) and every
    exchanged level ``l = 1..L`` of a run on an RHM, on at most ``n_samples`` inputs
    of the data file's test split. Rows: ``site``, ``layer`` (0-based),
    ``level`` (``l``), ``level_from_input`` (the paper's ``ℓ = L - l + 1``), ``value``."""
    import torch

    from tmr import io
    from tmr.metrics.sensitivity import synonymic_sensitivity
    from tmr.probes import collect_activations, match_sites
    from tmr.train import load_run
    from tmr.train.data_adapter import adapt_x

    model, _, data_path = load_run(run_dir)
    sample, _ = io.read(data_path, "test")
    gen = np.random.default_rng(rng)
    if len(sample) > n_samples:
        sample = sample[np.sort(gen.choice(len(sample), n_samples, replace=False))]
    vocab = int(sample.world.vocab_size)
    sites = match_sites(["layers.*.post"], model.sites)

    def layer_fn(x: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return collect_activations(model, adapt_x(x, vocab), sites)

    L = int(sample.world.n_levels)
    rows = []
    for level in range(1, L + 1):
        seed = np.random.SeedSequence([level, int(gen.integers(2**31))])
        by_site = synonymic_sensitivity(layer_fn, sample, level, rng=seed)
        for site in sites:
            rows.append({"site": site, "layer": int(site.split(".")[1]), "level": level,
                         "level_from_input": L - level + 1, "value": float(by_site[site])})
    return rows
