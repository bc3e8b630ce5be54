"""Layer metrics as tidy rows: the saved table that plots and reports draw from.

Columns match ``probe_scores.csv`` of a run directory:
``step, site, level, position, metric, split, value, n, d, n_classes, seed``.
Layer-only metrics have ``level = ""``; ``position`` is the level position used
as label (-1: the whole level row, or none).
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tmr.metrics import collapse, information, intrinsic_dim, rank, similarity
from tmr.metrics._common import level_labels

__all__ = ["COLUMNS", "DEFAULT_METRICS", "layer_metric_rows", "read_table", "write_table"]

COLUMNS = ("step", "site", "level", "position", "metric", "split", "value", "n", "d",
           "n_classes", "seed")
DEFAULT_METRICS = ("effective_rank", "participation_ratio", "twonn", "mi_input", "knn_mi",
                   "binned_mi", "nc1", "rnc1", "separation", "cka_onehot", "rsa_tree")
LAYER_METRICS = {"effective_rank", "participation_ratio", "twonn", "mi_input", "rsa_tree"}
BINS = 30  # paper 002's bin count
MAX_NC_CLASSES = 1024  # collapse metrics need classes, not near-unique labels


def layer_metric_rows(acts: Mapping[str, np.ndarray], sample: Any, *, step: int = 0,
                      seed: int = 0, metrics: Sequence[str] = DEFAULT_METRICS,
                      position: int = 0, knn_samples: int | None = 4000,
                      n_bins: int = BINS) -> list[dict[str, object]]:
    """Tidy rows of ``metrics`` for every site in ``acts`` ``{site: (n, d)}`` and level.

    Level labels are position ``position`` of each level of ``sample`` (the
    probes' convention); ``rsa_tree`` uses the whole latent path; ``mi_input``
    compares with the input rows ``sample.x``.
    """
    unknown = set(metrics) - set(DEFAULT_METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {DEFAULT_METRICS}")
    labels = {name: level_labels(np.asarray(lv).reshape(len(lv), -1)[:, position:position + 1])
              for name, lv in zip(sample.level_names, sample.levels, strict=True)}
    rows: list[dict[str, object]] = []
    for site, h in acts.items():
        h = np.asarray(h, dtype=np.float64).reshape(len(h), -1)  # (n, d)
        n, d = h.shape

        def add(metric: str, value: float, level: str = "", n_classes: int = 0,
                pos: int = -1, site: str = site, n: int = n, d: int = d) -> None:
            rows.append(dict(step=step, site=site, level=level, position=pos, metric=metric,
                             split="all", value=float(value), n=n, d=d, n_classes=n_classes,
                             seed=seed))

        if "effective_rank" in metrics:
            add("effective_rank", rank.effective_rank(h))
        if "participation_ratio" in metrics:
            add("participation_ratio", rank.participation_ratio(h))
        if "twonn" in metrics:
            add("twonn", intrinsic_dim.twonn(h, max_samples=knn_samples))
        if "mi_input" in metrics:
            add("mi_input", information.input_mi_discrete(h, sample.x))
        if "rsa_tree" in metrics:
            add("rsa_tree", similarity.rsa_tree(h, sample.levels))
        if "knn_mi" in metrics:
            values = information.knn_mi_discrete_levels(h, list(labels.values()),
                                                        max_samples=knn_samples)
            for (name, y), v in zip(labels.items(), values, strict=True):
                add("knn_mi", v, name, int(y.max()) + 1, position)
        for name, y in labels.items():
            c = int(y.max()) + 1
            if "binned_mi" in metrics:
                add("binned_mi", information.binned_mi(h, y, n_bins=n_bins), name, c, position)
            if "cka_onehot" in metrics:
                add("cka_onehot", similarity.cka_onehot(h, y), name, c, position)
            if not 2 <= c <= MAX_NC_CLASSES:
                continue
            if "nc1" in metrics:
                add("nc1", collapse.nc1(h, y), name, c, position)
            if "rnc1" in metrics:
                add("rnc1", collapse.rnc1(h, y), name, c, position)
            if "separation" in metrics:
                add("separation", collapse.separation_he_su(h, y), name, c, position)
    return rows


def write_table(rows: Iterable[Mapping[str, object]], path: str | Path, *,
                append: bool = True) -> None:
    """Write (or append) tidy rows to a CSV with :data:`COLUMNS`."""
    p = Path(path)
    new = not (append and p.exists())
    with p.open("w" if new else "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerows(rows)


def write_table_atomic(rows: Iterable[Mapping[str, Any]], path: str | Path,
                       columns: Sequence[str] = COLUMNS) -> Path:
    """Write tidy rows with ``columns`` (default :data:`COLUMNS`) to a fresh CSV atomically
    (a temporary file renamed at the end: no torn table on Ctrl-C); floats to 8
    significant digits."""
    from tmr import io

    with io.atomic_path(Path(path)) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        for r in rows:
            writer.writerow({c: (f"{r[c]:.8g}" if isinstance(r[c], float) else r[c])
                             for c in columns})
    return Path(path)


def read_table(path: str | Path) -> list[dict[str, object]]:
    """Rows of a tidy CSV, numbers parsed (``value`` float; ``step``, ``n``... int;
    non-numeric entries such as the probes' ``position = "mean"`` kept as text)."""
    out: list[dict[str, object]] = []
    with Path(path).open(newline="") as f:
        for row in csv.DictReader(f):
            parsed: dict[str, object] = dict(row)
            for key in ("step", "position", "n", "d", "n_classes", "seed"):
                text = row.get(key)
                if text not in (None, ""):
                    # probe_scores' position "mean" stays a string
                    with contextlib.suppress(ValueError):
                        parsed[key] = int(float(text))  # type: ignore[arg-type]
            parsed["value"] = float(row["value"]) if row.get("value") not in (None, "") \
                else float("nan")
            out.append(parsed)
    return out
