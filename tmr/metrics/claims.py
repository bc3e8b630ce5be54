"""Does a run satisfy paper 000's layer-wise claims (3)-(7)? Verdicts from per-layer values.

Paper 000 claims, per layer i of a trained network: effective rank decreases (3),
intrinsic dimension decreases (4), I(S_i;Y) increases (5), I(S_i;X) decreases (6),
He & Su separation D decreases geometrically (7), i.e. log D is linear in depth
(He & Su 2023). These functions take the per-layer values already computed (a
report draws them from saved tables) and return numbers, not only yes/no.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats as sps

# per-layer values: a list, tuple or 1-D array of floats
Values = Sequence[float] | np.ndarray

__all__ = ["CLAIMS", "CLAIM_SOURCES", "CLAIM_TESTS", "geometric_fit", "monotone_trend",
           "paper000_claims", "verdict"]

# A trend "holds" when the rank correlation with depth has the claimed sign and
# |rho| >= MONOTONE_MIN_RHO (allows one small inversion in 6 layers: rho = 0.94).
MONOTONE_MIN_RHO = 0.8
# scipy returns rho = 0.8 of 4 layers with one inversion as 0.7999...; compare with slack
RHO_TOL = 1e-9
# A geometric decay "holds" when log values are fit by a line of negative slope
# with R^2 >= GEOMETRIC_MIN_R2 (He & Su report R^2 > 0.9 in trained nets).
GEOMETRIC_MIN_R2 = 0.9

# (claim number, metric key, direction, statement)
CLAIMS: tuple[tuple[int, str, int, str], ...] = (
    (3, "effective_rank", -1, "effective rank decreases with depth"),
    (4, "intrinsic_dim", -1, "intrinsic dimension (TwoNN) decreases with depth"),
    (5, "mi_label", +1, "I(S_i;Y) increases with depth"),
    (6, "mi_input", -1, "I(S_i;X) decreases with depth"),
    (7, "separation", -1, "separation D decreases geometrically with depth"),
)
#: where each claim is stated (paper 000 numbers its claims as equations)
CLAIM_SOURCES = {n: f"paper 000, eq. ({n})" for n, *_ in CLAIMS}
#: the test behind each verdict, in words
CLAIM_TESTS = {
    **{n: f"Spearman ρ(depth) ≥ {MONOTONE_MIN_RHO} in the claimed direction"
       for n, *_ in CLAIMS},
    7: f"log-linear fit log D_i = a + b·i: ratio e^b < 1 and R² ≥ {GEOMETRIC_MIN_R2}",
}
# Why a metric can be the same at every layer, per metric key (used in "not testable").
_CONSTANT_REASONS = {
    "mi_input": "every layer is injective on this data: I(S_i;X) = {v:.3g} nats, the entropy "
                "of the distinct inputs, at each layer",
}


def _values(values: Values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).reshape(-1)  # (n_layers,)
    if v.shape[0] < 2:
        raise ValueError(f"need values at >= 2 layers; got {v.shape[0]}")
    return v


def monotone_trend(values: Values, direction: int) -> dict[str, float | bool]:
    """Trend of per-layer values against depth in ``direction`` (+1 up, -1 down).

    Returns ``spearman`` (rank correlation with depth, times ``direction`` so that
    +1 means perfectly as claimed), ``strict`` (every step goes the claimed way),
    ``frac_steps`` (fraction of consecutive steps that do) and ``holds``
    (``spearman >= MONOTONE_MIN_RHO``). NaN values make ``holds`` False.
    """
    if direction not in (-1, 1):
        raise ValueError(f"direction={direction} must be +1 (increase) or -1 (decrease)")
    v = _values(values)
    steps = np.diff(v) * direction  # (n_layers - 1,)
    if not np.all(np.isfinite(v)) or np.ptp(v) == 0:
        rho = float("nan")
    else:
        rho = float(sps.spearmanr(np.arange(v.shape[0]), v).statistic) * direction
    return {"spearman": rho, "strict": bool(np.all(steps > 0)),
            "frac_steps": float(np.mean(steps > 0)),
            "holds": bool(np.isfinite(rho) and rho >= MONOTONE_MIN_RHO - RHO_TOL)}


def geometric_fit(values: Values) -> dict[str, float | bool]:
    """Least-squares fit ``log v_i = a + b i`` over layers i = 0, 1, ...

    Returns ``ratio = exp(b)`` (per-layer factor; < 1 is decay), ``r2`` of the fit
    in log space, and ``holds`` (``ratio < 1`` and ``r2 >= GEOMETRIC_MIN_R2``).
    Non-positive values cannot be fit and give NaN.
    """
    v = _values(values)
    if np.any(~np.isfinite(v)) or np.any(v <= 0):
        return {"ratio": float("nan"), "r2": float("nan"), "holds": False}
    depth = np.arange(v.shape[0], dtype=np.float64)
    fit = sps.linregress(depth, np.log(v))
    r2 = float(fit.rvalue**2) if np.ptp(np.log(v)) > 0 else 0.0
    ratio = float(np.exp(fit.slope))
    return {"ratio": ratio, "r2": r2, "holds": bool(ratio < 1 and r2 >= GEOMETRIC_MIN_R2)}


def paper000_claims(per_layer: Mapping[str, Values]) -> list[dict[str, object]]:
    """One row per claim (3)-(7) whose metric is in ``per_layer`` (layers in depth order).

    Keys: ``effective_rank``, ``intrinsic_dim``, ``mi_label``, ``mi_input``,
    ``separation``. Each row: claim, statement, metric, values, the monotone
    trend numbers, the geometric fit (claim 7 uses it for ``holds``), ``holds``,
    ``verdict`` and ``reason`` (from :func:`verdict`), ``source`` (where the claim is
    stated) and ``test`` (the test, in words).
    """
    rows: list[dict[str, object]] = []
    for number, key, direction, statement in CLAIMS:
        if key not in per_layer:
            continue
        values = _values(per_layer[key])
        trend = monotone_trend(values, direction)
        row: dict[str, object] = {"claim": number, "statement": statement, "metric": key,
                                  "values": [float(x) for x in values], **trend}
        if number == 7:
            fit = geometric_fit(values)
            row.update(ratio=fit["ratio"], r2=fit["r2"], holds=bool(fit["holds"]))
        row["verdict"], row["reason"] = verdict(row)
        row.update(source=CLAIM_SOURCES[number], test=CLAIM_TESTS[number])
        rows.append(row)
    return rows


def _layers(mask: np.ndarray) -> str:
    return ", ".join(str(i) for i in np.flatnonzero(mask))


def verdict(row: Mapping[str, object]) -> tuple[str, str]:
    """``("holds" | "fails" | "not testable", reason)`` for one row of :func:`paper000_claims`.

    Not testable: a value is NaN (the metric is undefined there), every layer has the same
    value (no trend to rank), or, for the geometric claim (7), a value is <= 0 (no log).
    Otherwise the reason quotes the number the test compared with its threshold.
    """
    v = np.asarray(row["values"], dtype=np.float64)  # (n_layers,)
    key, number = str(row["metric"]), int(row["claim"])  # type: ignore[call-overload]
    if not np.all(np.isfinite(v)):
        return "not testable", (f"the metric is undefined (NaN) at layer(s) "
                                f"{_layers(~np.isfinite(v))}")
    if np.ptp(v) == 0:
        reason = _CONSTANT_REASONS.get(key, "the value is {v:.3g} at every layer: no trend to test")
        return "not testable", reason.format(v=v[0])
    rho = float(row["spearman"])  # type: ignore[arg-type]
    n_good = round(float(row["frac_steps"]) * (len(v) - 1))  # type: ignore[arg-type]
    steps = f"{n_good} of {len(v) - 1} layer-to-layer steps go the claimed way"
    if number == 7:
        if np.any(v <= 0):
            return "not testable", f"D ≤ 0 at layer(s) {_layers(v <= 0)}: no log-linear fit"
        ratio, r2 = float(row["ratio"]), float(row["r2"])  # type: ignore[arg-type]
        if row["holds"]:
            return "holds", f"D shrinks by ×{ratio:.2f} per layer, R² = {r2:.2f}"
        if ratio >= 1:
            return "fails", f"D grows by ×{ratio:.2f} per layer"
        return "fails", (f"D shrinks by ×{ratio:.2f} per layer but not geometrically: "
                         f"R² = {r2:.2f} < {GEOMETRIC_MIN_R2}")
    if row["holds"]:
        return "holds", f"ρ = {rho:.2f} ≥ {MONOTONE_MIN_RHO}; {steps}"
    if rho < 0:
        return "fails", f"the opposite trend: ρ = {rho:.2f}; {steps}"
    return "fails", f"ρ = {rho:.2f} < {MONOTONE_MIN_RHO}; {steps}"
