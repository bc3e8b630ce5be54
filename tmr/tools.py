"""Score interpretability tools (SAEs, PCA, eNTK modes) against a run's known latents.

Every tool gives, on the evaluation samples, features F ``(n, m)`` ordered by relevance, a
decoder D ``(m, d)`` and an offset b ``(d,)`` with the reconstruction at scale s
x̂_s = F[:, :s] D[:s] + b (SAEs: codes and raw-unit decoder rows, ordered as in
``tmr.sae.feature_order``; PCA: scores, principal directions, mean; ntk: the feature-space
modes of the eNTK, ``tmr.rg.report``). At every scale s of the ladder 1, 2, 4, …, m the
table holds (formulas in ``tmr.metrics.features``):

- per latent (level, position, value): ``auroc`` (best kept feature, sign-free),
  ``auroc_sign``, ``f1``; per level ``mean_auroc`` and ``mono_fraction`` (share of its
  latents with AUROC ≥ MONO_AUROC; level ``""``: all latents);
- ``feature_level_fraction`` per level: the share of kept features whose best latent
  (AUROC ≥ FEATURE_MATCH_AUROC) lies in that level, and ``feature_depth``: the mean level
  index of the matched kept features (0 = root): coarse → fine as s grows;
- ``dead_fraction``: share of the kept features that never fire on the evaluation samples;
- ``fvu``, and the task observable with the site replaced by x̂_s: ``agreement`` with the
  full network's prediction, ``accuracy`` and ``delta_accuracy`` (root/level tasks);
- per planted variable (aux arrays ``planted_*``, level ``planted.<name>``), from
  :func:`planted_rows`, which asks ``tmr.planted.assess`` (the one place that decides
  kept / discarded / absent) about the scheme "keep the first s features":
  ``planted_verdict`` (:data:`VERDICT_CODES`: 1 kept, 0 discarded, −1 absent from the site),
  ``planted_tail_dim`` (how many directions the scale leaves out of the kept decoder span;
  0: a variable the codes do not decode is lost in the encoder, no tail to bound),
  ``planted_decodability`` (kept features) and ``planted_decodability_full`` (whole site),
  the tail displacement ``planted_tail_displacement`` ε_v of a real intervention on the
  variable (``planted_intervention`` 1; class means where the data has no counterfactual:
  0), and with the model the
  certified margin bound ``planted_certified`` D(ε_v), the median margin ``planted_margin``
  g₀, ``planted_revealed_fraction`` and ``planted_revealed`` (1 when D(ε_v) ≥ g₀ on at least
  half the correctly predicted inputs);
- ``canonicity_seeds`` (Hungarian mean cosine over pairs of seeds at one width) and
  ``canonicity_widths`` (width w against the next width, lowest seed), both over the
  features that fire on some evaluation sample.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tmr.metrics.features import (
    MONO_AUROC,
    Latents,
    auroc_matrix,
    best_f1,
    canonicity,
    fvu,
)
from tmr.metrics.table import write_table_atomic

TOOLS = ("sae-relu", "sae-topk", "matryoshka", "pca", "ntk")
SAE_TOOLS = ("sae-relu", "sae-topk", "matryoshka")
PLANTED_PREFIX = "planted_"
#: ``planted_verdict`` values: tmr.planted's verdict as a number for the tidy table
VERDICT_CODES = {"kept": 1.0, "discarded": 0.0, "absent": -1.0}
# Inputs whose certified margin bound is computed per (fit, scale, planted variable).
N_BOUND = 100
# A feature "matches" a level when its best latent reaches this AUROC.
FEATURE_MATCH_AUROC = 0.75
# Samples of the eNTK (n × n kernel); its feature-space modes then score all samples.
NTK_SAMPLES = 512
COLUMNS = ("tool", "site", "width", "seed", "scale", "level", "position", "latent_value",
           "metric", "value", "feature", "n", "d")
Progress = Callable[[str, int, int], None]


@dataclass
class ToolFeatures:
    """One fitted tool: codes ``(n, m)``, decoder ``(m, d)``, offset ``(d,)``, ordered."""

    tool: str
    width: int
    seed: int
    codes: np.ndarray
    decoder: np.ndarray
    offset: np.ndarray


def scale_ladder(m: int) -> list[int]:
    """1, 2, 4, … below m, then m."""
    out, s = [], 1
    while s < m:
        out.append(s)
        s *= 2
    return [*out, m]


def parse_tools(text: str) -> list[str]:
    """'sae-topk,pca' → ['sae-topk', 'pca'], each checked against :data:`TOOLS`."""
    tools = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in tools if t not in TOOLS]
    if bad or not tools:
        raise ValueError(f"unknown tool {bad[0] if bad else text!r}; choose from {list(TOOLS)}")
    return tools


def parse_widths(text: str, d: int | None = None) -> list[int]:
    """'256,2x,8x' → dictionary widths (``Nx`` = N times the site width d); each > 0."""
    out: list[int] = []
    for tok in (t.strip() for t in text.split(",") if t.strip()):
        try:
            w = (float(tok[:-1]) * (d if d is not None else 0)) if tok.endswith("x") \
                else float(tok)
        except ValueError:
            raise ValueError(f"bad width {tok!r}; give integers or multiples like 8x") from None
        if tok.endswith("x") and d is None:
            raise ValueError(f"width {tok!r} needs the site width; give an integer")
        if w <= 0 or w != int(w):
            raise ValueError(f"width {tok!r} must be a positive integer (got {w:g}); "
                             "give widths > 0")
        out.append(int(w))
    if not out:
        raise ValueError("no widths given; e.g. --widths 1x,2x,8x")
    return sorted(set(out))


def score_features(tf: ToolFeatures, latents: Latents, *, site: str, h: np.ndarray,
                   level_order: Sequence[str],
                   forward: Callable[[np.ndarray], np.ndarray] | None = None,
                   target: np.ndarray | None = None,
                   scales: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Tidy rows (module docstring) of one tool at every scale; ``h`` ``(n, *site_shape)``
    are the site's activations on the same samples as ``tf.codes``."""
    n, m = tf.codes.shape
    flat = np.asarray(h, dtype=np.float64).reshape(n, -1)
    d = flat.shape[1]
    base = {"tool": tf.tool, "site": site, "width": tf.width, "seed": tf.seed, "n": n, "d": d}
    rows: list[dict[str, Any]] = []

    def add(scale: int, metric: str, value: float, level: str = "", position: int = -1,
            latent_value: int = -1, feature: int = -1) -> None:
        rows.append({**base, "scale": scale, "level": level, "position": position,
                     "latent_value": latent_value, "metric": metric, "value": float(value),
                     "feature": feature})

    has_latents = latents.y.shape[1] > 0
    raw = auroc_matrix(tf.codes, latents.y) if has_latents else np.zeros((m, 0))  # (m, L)
    oriented = np.maximum(raw, 1.0 - raw)
    depth = {name: i for i, name in enumerate(level_order)}
    lev = np.array(latents.level, dtype=object)
    f1_cache: dict[tuple[int, int], float] = {}
    live = np.any(tf.codes != 0, axis=0)  # (m,) features that fire on some sample
    full = forward(np.asarray(h)) if forward is not None else None
    acc_full = (float((full.argmax(-1) == target).mean())
                if full is not None and target is not None else None)
    for s in scales or scale_ladder(m):
        s = min(int(s), m)
        if has_latents:
            best = np.argmax(oriented[:s], axis=0)  # (L,)
            score = oriented[best, np.arange(best.size)]
            for i in range(best.size):
                j = int(best[i])
                key = (j, i)
                if key not in f1_cache:
                    sign = 1.0 if raw[j, i] >= 0.5 else -1.0
                    f1_cache[key] = best_f1(sign * tf.codes[:, j], latents.y[:, i])[0]
                where = (latents.level[i], latents.position[i], latents.value[i], j)
                add(s, "auroc", score[i], *where)
                add(s, "auroc_sign", 1.0 if raw[j, i] >= 0.5 else -1.0, *where)
                add(s, "f1", f1_cache[key], *where)
            for name in dict.fromkeys(latents.level):
                sel = lev == name
                add(s, "mean_auroc", score[sel].mean(), level=name)
                add(s, "mono_fraction", (score[sel] >= MONO_AUROC).mean(), level=name)
            add(s, "mono_fraction", (score >= MONO_AUROC).mean())
            match = np.argmax(oriented[:s], axis=1)  # (s,) best latent per kept feature
            ok = oriented[np.arange(s), match] >= FEATURE_MATCH_AUROC
            hier = [depth.get(latents.level[int(k)]) for k in match[ok]]
            for name in dict.fromkeys(latents.level):
                add(s, "feature_level_fraction",
                    float(np.sum((lev[match] == name) & ok) / s), level=name)
            known = [v for v in hier if v is not None]
            add(s, "feature_depth", float(np.mean(known)) if known else float("nan"))
        recon = tf.codes[:, :s] @ tf.decoder[:s] + tf.offset  # (n, d)
        add(s, "fvu", fvu(flat, recon))
        add(s, "dead_fraction", float(np.mean(~live[:s])))
        if full is not None and forward is not None:
            out = forward(recon.reshape(np.shape(h)))
            add(s, "agreement", float((out.argmax(-1) == full.argmax(-1)).mean()))
            if acc_full is not None:
                acc = float((out.argmax(-1) == target).mean())
                add(s, "accuracy", acc)
                add(s, "delta_accuracy", acc - acc_full)
    return rows


def kept_scheme(tf: ToolFeatures, s: int) -> Any:
    """The tool as a coarse-graining at scale s (a ``tmr.rg.CoarseGrained``): coarse = the
    first s codes ``(n, s)``, modes = their unit decoder directions ``(d, s)``, tail_basis =
    the orthonormal complement of their span (empty ``(d, 0)`` when they span the site)."""
    from tmr.rg.base import CoarseGrained
    from tmr.sae import span_complement

    dec = np.asarray(tf.decoder[:s], dtype=np.float64)  # (s, d)
    norms = np.maximum(np.linalg.norm(dec, axis=1), 1e-300)
    modes = (dec / norms[:, None]).T  # (d, s)
    return CoarseGrained(coarse=tf.codes[:, :s], modes=modes, relevance=np.ones(s),
                         tail_basis=span_complement(modes), scale=float(s), scheme=tf.tool)


def planted_rows(tf: ToolFeatures, h: np.ndarray, targets: Mapping[str, np.ndarray], *,
                 site: str, model: Any = None, labels: np.ndarray | None = None,
                 counterfactual: Mapping[str, np.ndarray] | None = None,
                 scales: Sequence[int] | None = None, n_bound: int = N_BOUND,
                 seed: int = 0) -> list[dict[str, Any]]:
    """Tidy ``planted_*`` rows (module docstring) of one fit at every scale: ``tmr.planted.
    assess`` on :func:`kept_scheme` ``(tf, s)``. ``h`` ``(n, *site_shape)`` are the site's
    activations on the rows of ``tf.codes``; ``targets`` ``{name: (n,) or (n, P)}``;
    ``counterfactual[name]`` the site's activations with that variable changed; with
    ``model`` and ``labels`` (n,) the bound is certified on the first ``n_bound`` inputs
    (``n_bound = 0``: no bounds)."""
    from tmr import planted

    n, m = tf.codes.shape
    d = int(np.prod(np.shape(h)[1:]))
    base = {"tool": tf.tool, "site": site, "width": tf.width, "seed": tf.seed, "n": n, "d": d,
            "position": -1, "latent_value": -1, "feature": -1}
    bound_model = model if (model is not None and labels is not None and n_bound > 0) \
        else None
    metrics = (("planted_decodability", "kept"), ("planted_decodability_full", "full"),
               ("planted_tail_displacement", "tail_displacement"),
               ("planted_certified", "certified"), ("planted_margin", "margin"),
               ("planted_revealed_fraction", "revealed_fraction"),
               ("planted_revealed", "revealed"))
    rows: list[dict[str, Any]] = []
    for s in scales or scale_ladder(m):
        s = min(int(s), m)
        cg = kept_scheme(tf, s)
        verdicts = planted.assess(h, cg, targets, model=bound_model, site=site, labels=labels,
                                  counterfactual=counterfactual, n_bound=n_bound, seed=seed)
        for v in verdicts:
            where = {**base, "scale": s, "level": "planted." + v.name}
            rows.append({**where, "metric": "planted_verdict",
                         "value": VERDICT_CODES[v.verdict]})
            rows.append({**where, "metric": "planted_tail_dim",
                         "value": float(cg.tail_basis.shape[1])})
            if v.displacement is not None:
                rows.append({**where, "metric": "planted_intervention",
                             "value": float(v.displacement == "intervention")})
            for metric, field in metrics:
                val = getattr(v, field)
                if val is not None and not (isinstance(val, float) and np.isnan(val)):
                    rows.append({**where, "metric": metric, "value": float(val)})
    return rows


def canonicity_rows(fitted: Sequence[ToolFeatures], site: str) -> list[dict[str, Any]]:
    """``canonicity_seeds`` per (tool, width) over seed pairs and ``canonicity_widths`` from
    each width to the next (lowest seed), for tools with several fits."""
    rows: list[dict[str, Any]] = []
    by_tool: dict[str, list[ToolFeatures]] = {}
    for tf in fitted:
        by_tool.setdefault(tf.tool, []).append(tf)
    for tool, fits in by_tool.items():
        signed = tool in SAE_TOOLS
        widths = sorted({f.width for f in fits})
        common = {"tool": tool, "site": site, "level": "", "position": -1, "latent_value": -1,
                  "feature": -1, "n": len(fits[0].codes), "d": fits[0].decoder.shape[1]}
        for w in widths:
            same = sorted((f for f in fits if f.width == w), key=lambda f: f.seed)
            pairs = list(itertools.combinations(same, 2))
            if pairs:
                v = np.mean([canonicity(_live(a), _live(b), signed=signed) for a, b in pairs])
                rows.append({**common, "width": w, "seed": -1, "scale": w,
                             "metric": "canonicity_seeds", "value": float(v)})
        for w1, w2 in itertools.pairwise(widths):
            a = min((f for f in fits if f.width == w1), key=lambda f: f.seed)
            b = min((f for f in fits if f.width == w2), key=lambda f: f.seed)
            rows.append({**common, "width": w2, "seed": a.seed, "scale": w1,
                         "metric": "canonicity_widths",
                         "value": canonicity(_live(a), _live(b), signed=signed)})
    return rows


def _live(tf: ToolFeatures) -> np.ndarray:
    """Decoder rows of the features that fire on some evaluation sample (dead SAE features
    are random directions and would only dilute the matching)."""
    return tf.decoder[np.any(tf.codes != 0, axis=0)]


def write_rows(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Tidy rows with :data:`COLUMNS` to a CSV, atomically; floats to 8 significant digits."""
    return write_table_atomic(rows, path, COLUMNS)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``tool_scores.csv``, numbers parsed."""
    ints = ("width", "seed", "scale", "position", "latent_value", "feature", "n", "d")
    out = []
    with Path(path).open(newline="") as f:
        for r in csv.DictReader(f):
            row: dict[str, Any] = dict(r)
            for k in ints:
                row[k] = int(r[k])
            row["value"] = float(r["value"])
            out.append(row)
    return out
