"""Separation-of-scales bounds (background.md §5): how far can a perturbation confined to a
subspace of one hook site move an observable?

For an activation batch h at a site, an orthonormal basis V (d, k) and an observable g of the
tail's output, we bound   D(ε) = max_{‖z‖₂ ≤ ε} |g(f(h + V z)) − g(f(h))|   per input:

* certified (upper) bounds, both sound, reported as their minimum:
  - CROWN (Zhang et al. 2018, "Efficient Neural Network Robustness Certification with General
    Activation Functions"): backward linear relaxation; ReLU/LeakyReLU(α∈[0,1]) on a crossing
    interval [l, u] use the chord above (slope (u − αl)/(u − l)) and the adaptive line λx,
    λ ∈ {α, 1}, below. Intermediate bounds come from the same backward pass; the input set is
    concretised exactly: max_{‖z‖≤ε} a·(h + Vz) = a·h + ε‖Vᵀa‖₂.
  - the Lipschitz product ε · max_s ‖C_s W_L‖ · Π ‖W_i‖₂ · ‖W_1 V‖₂ (residual blocks: 1 + Lip).
* an empirical (lower) bound: projected gradient ascent (Madry et al. 2018) with restarts,
  both signs, normalised steps and projection onto the ball.

Observables are monotone functions φ of linear "specs" s = C·f: the margin
l_y − max_{j≠y} l_j = min_j (l_y − l_j); the cross-entropy loss log(1 + Σ_{j≠y} e^{l_j − l_y})
(convex and increasing in the specs; tangent-plane lower bound and the quadratic upper bound
φ(c + Δ) ≤ φ(c) + ∇φ·Δ + ½‖Δ‖², since its Hessian diag(p) − ppᵀ ⪯ I); a class logit; a linear
probe w·f + b. Each is 1-Lipschitz in the specs' ℓ∞ norm, which the Lipschitz bound uses.

Rounding: everything runs in float64 with round-to-nearest, not interval arithmetic. A
sum of m terms carries relative error ≤ m·u (u = 2⁻⁵³ ≈ 1.1e-16); for the widths and depths
here that is < 1e-12 of the magnitudes. Certified values are inflated by ROUND_SLACK·(|g(0)| +
bound), seven orders of magnitude above that, which also covers cancellation in the centre
a·h + b up to a factor 1e6. Tests compare attacks against the bound with zero extra tolerance.

Layers without a relaxation here (attention, LayerNorm, GELU, anything else) make a tail
"empirical only": `certified` is None and only the attack value is returned.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

ROUND_SLACK = 1e-9  # relative; ≫ m·u for m ≤ 1e4 terms, see module docstring
ORTHONORMAL_TOL = 1e-6  # max |VᵀV − I|; float32-stored bases reach ~1e-7
ATTACK_STEPS = 60
ATTACK_RESTARTS = 4
CHUNK = 256  # inputs per CROWN pass
KINDS = ("margin", "logit", "loss", "probe")


# ----------------------------------------------------------------------------- observables
@dataclass(frozen=True)
class Observable:
    """A scalar function of the tail output (n, n_out); build with the helpers below."""

    kind: str  # one of KINDS
    labels: np.ndarray | None = None  # (n,) int: true class, for margin and loss
    index: int | None = None  # class, for logit
    weight: np.ndarray | None = None  # (n_out,) probe direction
    bias: float = 0.0

    def value(self, out: torch.Tensor) -> torch.Tensor:
        """g(out) per sample, differentiable: (n, n_out) -> (n,)."""
        out = out.reshape(out.shape[0], -1)
        if self.kind in ("margin", "loss"):
            y = self._labels(out.shape[0], out.shape[1], out.device)
            if self.kind == "loss":
                return torch.nn.functional.cross_entropy(out, y, reduction="none")
            ly = out.gather(1, y[:, None])[:, 0]
            other = out.scatter(1, y[:, None], -math.inf)
            return ly - other.max(dim=1).values
        if self.kind == "logit":
            return out[:, int(self.index or 0)]
        w = torch.as_tensor(self.weight, dtype=out.dtype, device=out.device)
        return out @ w + self.bias

    def specs(self, n: int, n_out: int) -> tuple[torch.Tensor, str]:
        """(C (n, s, n_out) float64, combine) with g = φ(C·out) + offset, φ ∈ {min, lse, id}."""
        if self.kind in ("margin", "loss"):
            if n_out < 2:
                raise ValueError(f"observable {self.kind!r} needs ≥ 2 classes, got {n_out}")
            y = self._labels(n, n_out, torch.device("cpu"))
            eye = torch.eye(n_out, dtype=torch.float64)
            keep = ~torch.nn.functional.one_hot(y, n_out).bool()  # (n, n_out)
            diff = eye[y][:, None, :] - eye[None, :, :]  # (n, n_out, n_out): e_y − e_j
            c = diff[keep].reshape(n, n_out - 1, n_out)
            return (c, "min") if self.kind == "margin" else (-c, "lse")
        if self.kind == "logit":
            if not 0 <= int(self.index or 0) < n_out:
                raise ValueError(f"class index {self.index} out of range for {n_out} outputs")
            c = torch.zeros(n, 1, n_out, dtype=torch.float64)
            c[:, 0, int(self.index or 0)] = 1.0
            return c, "id"
        w = torch.as_tensor(np.asarray(self.weight, dtype=np.float64))
        if w.shape != (n_out,):
            raise ValueError(f"probe weight shape {tuple(w.shape)} != tail output ({n_out},)")
        return w.expand(n, 1, n_out).clone(), "id"

    @property
    def offset(self) -> float:
        return self.bias if self.kind == "probe" else 0.0

    def _labels(self, n: int, n_out: int, device: torch.device) -> torch.Tensor:
        y = torch.as_tensor(np.asarray(self.labels), dtype=torch.long, device=device)
        if y.shape != (n,) or int(y.min()) < 0 or int(y.max()) >= n_out:
            raise ValueError(f"labels must be ({n},) ints in [0, {n_out}); got shape "
                             f"{tuple(y.shape)}, range [{int(y.min())}, {int(y.max())}]")
        return y


def margin(labels: Sequence[int] | np.ndarray) -> Observable:
    return Observable("margin", labels=np.asarray(labels))


def loss(labels: Sequence[int] | np.ndarray) -> Observable:
    return Observable("loss", labels=np.asarray(labels))


def class_logit(index: int) -> Observable:
    return Observable("logit", index=int(index))


def probe(weight: Sequence[float] | np.ndarray, bias: float = 0.0) -> Observable:
    return Observable("probe", weight=np.asarray(weight, dtype=np.float64), bias=float(bias))


# ----------------------------------------------------------------------------- compile
@dataclass
class _Affine:
    W: torch.Tensor  # (m, d) float64
    b: torch.Tensor  # (m,)


@dataclass
class _Act:
    slope: float  # α: σ(x) = max(x, αx), 0 ≤ α ≤ 1
    up_s: torch.Tensor | None = None  # (n, m) upper line slope
    up_c: torch.Tensor | None = None  # (n, m) upper line intercept
    lo_s: torch.Tensor | None = None  # (n, m) lower line slope (through 0)

    def relax(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        """Linear bounds of σ on [lo, hi] (n, m); exact where the sign is fixed."""
        a = self.slope
        one, alpha = torch.ones_like(lo), torch.full_like(lo, a)  # float64: a float32 α is unsound
        cross = (lo < 0) & (hi > 0)
        s_chord = (hi - a * lo) / torch.where(cross, hi - lo, one)
        fixed = torch.where(lo >= 0, one, alpha)
        self.up_s = torch.where(cross, s_chord, fixed)
        self.up_c = torch.where(cross, (a - s_chord) * lo, torch.zeros_like(lo))
        self.lo_s = torch.where(cross, torch.where(hi >= -lo, one, alpha), fixed)


@dataclass
class _Res:
    ops: list  # y = x + inner(x)


class _Unsupported(Exception):
    """A layer with no linear relaxation here; the tail is then empirical only."""


def _is_residual(m: nn.Module) -> bool:
    # tmr.models.Residual(inner): y = x + inner(x); matched by name so this file does not
    # depend on tmr.models (the training side).
    return type(m).__name__ == "Residual" and isinstance(getattr(m, "inner", None), nn.Module)


def _modules(m: nn.Module) -> list[nn.Module]:
    return [x for c in m for x in _modules(c)] if isinstance(m, nn.Sequential) else [m]


#: affine layers turned into dense matrices (the 1-d tree CNN, the 2-d/3-d grid CNNs)
_AFFINE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.AvgPool1d, nn.AvgPool2d,
           nn.AvgPool3d)


def _compile(seq: nn.Module, shape: tuple[int, ...]) -> tuple[list, tuple[int, ...]]:
    """Turn the tail into affine maps on flattened activations, activations and residuals."""
    ops: list = []
    for m in _modules(seq):
        if isinstance(m, nn.Identity | nn.Dropout):  # HookPoint is an nn.Identity
            continue
        if _is_residual(m):
            inner_mod: nn.Module = m.inner  # type: ignore[assignment]
            inner, out_shape = _compile(inner_mod, shape)
            if out_shape != shape:
                raise ValueError(f"residual inner maps {shape} to {out_shape}; shapes must match")
            ops.append(_Res(inner))
        elif type(m) in (nn.ReLU, nn.LeakyReLU):
            a = float(getattr(m, "negative_slope", 0.0))
            if not 0.0 <= a <= 1.0:
                raise _Unsupported(f"LeakyReLU(negative_slope={a}) (only 0 ≤ α ≤ 1 relaxed)")
            ops.append(_Act(a))
        elif isinstance(m, nn.Flatten):
            shape = tuple(m(torch.zeros(1, *shape)).shape[1:])
        elif isinstance(m, _AFFINE):
            mm = copy.deepcopy(m).double().cpu()
            d = math.prod(shape)
            with torch.no_grad():
                if isinstance(mm, nn.Linear) and len(shape) == 1:
                    w = mm.weight.detach().clone()
                    b = torch.zeros(len(w)) if mm.bias is None else mm.bias.detach().clone()
                    shape = (w.shape[0],)
                else:  # any affine module as a dense matrix: push the basis through it
                    zero = mm(torch.zeros(1, *shape, dtype=torch.float64))
                    basis = mm(torch.eye(d, dtype=torch.float64).reshape(d, *shape))
                    b = zero.reshape(-1)
                    w = (basis.reshape(d, -1) - b).T.contiguous()
                    shape = tuple(zero.shape[1:])
            ops.append(_Affine(w.double(), b.double()))
        else:
            raise _Unsupported(type(m).__name__)
    return ops, shape


# ----------------------------------------------------------------------------- CROWN
def _backward(path: list, lam: torch.Tensor, bias: torch.Tensor):
    """Upper linear bound of lam·v through `path`, back to its input. lam is (s, m) while it is
    the same for every input (before the first activation met) and (n, s, m) after."""
    for op in reversed(path):
        if isinstance(op, _Affine):
            bias = bias + lam @ op.b
            lam = lam @ op.W
        elif isinstance(op, _Act):
            assert op.up_c is not None and op.up_s is not None and op.lo_s is not None
            pos, neg = lam.clamp(min=0), lam.clamp(max=0)  # (s, m) broadcasts against (n, 1, m)
            bias = bias + (pos * op.up_c[:, None, :]).sum(-1)
            lam = pos * op.up_s[:, None, :] + neg * op.lo_s[:, None, :]
        else:
            lam_in, b_in = _backward(op.ops, lam, torch.zeros_like(bias))
            lam, bias = lam + lam_in, bias + b_in
    return lam, bias


def _linear_bounds(path: list, spec: torch.Tensor, h: torch.Tensor, V: torch.Tensor):
    """For rows c of spec ((s, m) shared or (n, s, m)): c·v ≤ A_up z + c_up and ≥ A_lo z + c_lo
    for v the value after `path` at input h + Vz; A (..., s, k), c (n, s)."""
    s = spec.shape[-2]
    if path and isinstance(path[0], _Affine):  # fold the first layer into the input set:
        h, V = h @ path[0].W.T + path[0].b, path[0].W @ V  # x₁ = (W h + b) + (W V) z
        path = path[1:]
    lam, bias = _backward(path, torch.cat([spec, -spec], -2),
                          torch.zeros(h.shape[0], 2 * s, dtype=torch.float64))
    # lam (2s, d) when no activation was on the way (one map for every input), else (n, 2s, d)
    centre = (h @ lam.T if lam.ndim == 2 else (lam @ h[:, :, None])[..., 0]) + bias  # (n, 2s)
    A = lam @ V  # (..., 2s, k)
    return A[..., :s, :], centre[:, :s], -A[..., s:, :], -centre[:, s:]


def _sweep(ops: list, path: list, h: torch.Tensor, V: torch.Tensor, eps: float, m: int) -> int:
    """Set every activation's relaxation from CROWN bounds of its input; returns out width."""
    for op in ops:
        if isinstance(op, _Affine):
            m = op.W.shape[0]
        elif isinstance(op, _Act):
            eye = torch.eye(m, dtype=torch.float64)  # (m, m), shared by all inputs
            a_up, c_up, a_lo, c_lo = _linear_bounds(path, eye, h, V)
            op.relax(c_lo - eps * a_lo.norm(dim=-1), c_up + eps * a_up.norm(dim=-1))
        else:
            _sweep(op.ops, path, h, V, eps, m)
        path = [*path, op]
    return m


def _lse0(t: torch.Tensor) -> torch.Tensor:
    """log(1 + Σ_j exp t_j) over the last axis: the cross-entropy in terms of l_j − l_y."""
    return torch.logsumexp(torch.cat([torch.zeros_like(t[..., :1]), t], -1), -1)


def _crown(ops, h, V, spec, combine, g0, eps) -> torch.Tensor:
    """CROWN bound on max |φ(spec·f) − g0| over the ε-ball, per sample (n,); g0 excludes
    any constant offset of the observable."""
    _sweep(ops, [], h, V, eps, h.shape[1])
    a_up, c_up, a_lo, c_lo = _linear_bounds(ops, spec, h, V)
    hi = c_up + eps * a_up.norm(dim=-1)  # (n, s)
    lo = c_lo - eps * a_lo.norm(dim=-1)
    if combine == "min":
        g_lo, g_hi = lo.min(-1).values, hi.min(-1).values
    elif combine == "id":
        g_lo, g_hi = lo[:, 0], hi[:, 0]
    else:  # lse: monotone + convex, see module docstring
        p_up = torch.softmax(torch.cat([torch.zeros_like(c_up[:, :1]), c_up], -1), -1)[:, 1:]
        p_lo = torch.softmax(torch.cat([torch.zeros_like(c_lo[:, :1]), c_lo], -1), -1)[:, 1:]
        quad = (_lse0(c_up) + eps * (a_up * p_up[..., None]).sum(1).norm(dim=-1)
                + 0.5 * eps**2 * a_up.pow(2).sum((1, 2)))
        tangent = _lse0(c_lo) - eps * (a_lo * p_lo[..., None]).sum(1).norm(dim=-1)
        g_hi = torch.minimum(_lse0(hi), quad)
        g_lo = torch.maximum(_lse0(lo), tangent)
    return torch.maximum(g0 - g_lo, g_hi - g0).clamp(min=0)


def _lipschitz(ops: list, V: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
    """Per-sample Lipschitz constant of z ↦ spec·f(h + Vz) (max over specs), (n,)."""

    def lip(op) -> float:
        if isinstance(op, _Affine):
            return float(torch.linalg.matrix_norm(op.W, ord=2))
        if isinstance(op, _Act):
            return max(1.0, abs(op.slope))
        return 1.0 + math.prod(lip(o) for o in op.ops)

    ops = list(ops)
    first = V  # (d, k)
    if ops and isinstance(ops[0], _Affine):
        first = ops.pop(0).W @ V
    if not ops:
        return (spec @ first).norm(dim=-1).max(-1).values
    pre = float(torch.linalg.matrix_norm(first, ord=2)) if first.shape[1] else 0.0
    last = ops.pop()
    if isinstance(last, _Affine):
        post = (spec @ last.W).norm(dim=-1).max(-1).values
    else:
        post = spec.norm(dim=-1).max(-1).values * lip(last)
    return post * pre * math.prod(lip(o) for o in ops)


# ----------------------------------------------------------------------------- attack
def attack(tail: nn.Module, h: torch.Tensor, V: torch.Tensor, obs: Observable, eps: float, *,
           steps: int = ATTACK_STEPS, restarts: int = ATTACK_RESTARTS,
           rng: int | None = 0, site_shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """PGD lower bound on max_{‖z‖≤ε} |g(h + Vz) − g(h)|, (n,): normalised ascent steps with a
    geometric step decay ε/4 → ε/200, projection onto the ball, restart 0 from z = 0, the others
    uniform in the ball, both signs; the best value seen at any iterate is returned."""
    n, k = h.shape[0], V.shape[1]
    best = torch.zeros(n, dtype=torch.float64)
    if k == 0 or eps == 0 or steps <= 0:
        return best
    gen = torch.Generator().manual_seed(0 if rng is None else int(rng))
    shape = (h.shape[0], *(site_shape or h.shape[1:]))
    rep = 2 * restarts
    sign = torch.cat([torch.ones(restarts), -torch.ones(restarts)]).repeat_interleave(n)
    sign = sign.double()  # (rep·n,)
    hh = h.repeat(rep, 1)  # (rep·n, d)
    rep_obs = _repeat(obs, rep)
    with torch.no_grad():
        g0 = rep_obs.value(tail(hh.reshape(-1, *shape[1:])))
    z = torch.randn(rep * n, k, generator=gen, dtype=torch.float64)
    radius = eps * torch.rand(rep * n, 1, generator=gen, dtype=torch.float64) ** (1.0 / k)
    z = z / z.norm(dim=1, keepdim=True) * radius
    z[:n] = 0.0
    z[restarts * n:(restarts + 1) * n] = 0.0
    for t in range(steps + 1):
        z = z.detach().requires_grad_(True)
        x = (hh + z @ V.T).reshape(-1, *shape[1:])
        dev = rep_obs.value(tail(x)) - g0  # (rep·n,)
        best = torch.maximum(best, dev.detach().abs().reshape(rep, n).max(0).values)
        if t == steps:
            break
        (grad,) = torch.autograd.grad((sign * dev).sum(), z)
        step = eps * 0.25 * 0.02 ** (t / max(steps - 1, 1))
        z = z + step * grad / grad.norm(dim=1, keepdim=True).clamp(min=1e-300)
        norm = z.norm(dim=1, keepdim=True)
        z = z * torch.clamp(eps * (1 - 1e-12) / norm.clamp(min=1e-300), max=1.0)
    return best


def _repeat(obs: Observable, rep: int) -> Observable:
    if obs.labels is None:
        return obs
    return Observable(obs.kind, np.tile(np.asarray(obs.labels), rep), obs.index, obs.weight,
                      obs.bias)


# ----------------------------------------------------------------------------- public API
@dataclass(frozen=True)
class BoundResult:
    """Bounds on max_{‖z‖≤ε} |g(h + Vz) − g(h)|, arrays (n_eps, n) per radius and input."""

    eps: np.ndarray  # (n_eps,)
    g0: np.ndarray  # (n,) observable at the unperturbed input
    empirical: np.ndarray  # (n_eps, n) PGD lower bound
    certified: np.ndarray | None  # (n_eps, n) min(crown, lipschitz) + slack; None if uncertified
    crown: np.ndarray | None  # (n_eps, n)
    lipschitz: np.ndarray | None  # (n_eps, n)
    status: str  # "certified" or "empirical only"
    reason: str  # why empirical only ("" when certified)


def check_basis(V: np.ndarray | torch.Tensor, d: int) -> torch.Tensor:
    """V (d, k) with orthonormal columns, as float64; ValueError naming the defect otherwise."""
    v = torch.as_tensor(np.asarray(V, dtype=np.float64))
    if v.ndim != 2 or v.shape[0] != d:
        raise ValueError(f"basis has shape {tuple(v.shape)}; expected (d={d}, k) with the site's "
                         f"flattened width d")
    err = float((v.T @ v - torch.eye(v.shape[1], dtype=torch.float64)).abs().max()) \
        if v.shape[1] else 0.0
    if not err <= ORTHONORMAL_TOL:
        raise ValueError(f"basis columns are not orthonormal: max |VᵀV − I| = {err:.3g} > "
                         f"{ORTHONORMAL_TOL}; orthonormalise it first (np.linalg.qr(V)[0])")
    return v


def check_eps(eps: float | Sequence[float]) -> np.ndarray:
    e = np.atleast_1d(np.asarray(eps, dtype=np.float64))
    if e.ndim != 1 or not np.all(np.isfinite(e)) or np.any(e < 0):
        raise ValueError(f"radii must be finite and ≥ 0, got eps={e.tolist()}")
    return e


def resolve_tail(model: nn.Module, site: str | None) -> nn.Module:
    """A HookedModel and a site name → model.tail(site); an nn.Sequential → itself."""
    if hasattr(model, "tail") and hasattr(model, "sites"):
        sites = tuple(model.sites)  # type: ignore[arg-type]
        if site not in sites:
            raise ValueError(f"unknown site {site!r}; this model's sites are {list(sites)}")
        return model.tail(site)  # type: ignore[operator]
    if isinstance(model, nn.Sequential):
        return model
    raise TypeError(f"expected a HookedModel (with .tail/.sites) or nn.Sequential, got "
                    f"{type(model).__name__}")


def bound(model: nn.Module, h: np.ndarray | torch.Tensor, V: np.ndarray | torch.Tensor,
          observable: Observable, eps: float | Sequence[float], *, site: str | None = None,
          steps: int = ATTACK_STEPS, restarts: int = ATTACK_RESTARTS,
          rng: int | None = 0, chunk: int = CHUNK) -> BoundResult:
    """Certified and empirical bounds on max_{‖z‖₂≤ε} |g(f(h + Vz)) − g(f(h))| (module doc).

    h: (n, *site_shape) activations at the site; V: (d, k) orthonormal, d = prod(site_shape).
    steps=0 skips the attack (empirical = 0); CROWN runs `chunk` inputs at a time (its memory
    is ~16·chunk·width·d bytes per activation layer).
    """
    tail = copy.deepcopy(resolve_tail(model, site)).double().cpu().eval()
    x = torch.as_tensor(np.asarray(h, dtype=np.float64) if not torch.is_tensor(h) else h)
    x = x.detach().double().cpu()
    if x.ndim < 2:
        raise ValueError(f"h must be a batch (n, *site_shape), got shape {tuple(x.shape)}")
    shape = tuple(x.shape[1:])
    flat = x.reshape(x.shape[0], -1)  # (n, d)
    v = check_basis(V, flat.shape[1])
    radii = check_eps(eps)
    with torch.no_grad():
        out = tail(x)
        g0 = observable.value(out)  # (n,)
    spec, combine = observable.specs(x.shape[0], out.reshape(x.shape[0], -1).shape[1])
    try:
        ops, _ = _compile(tail, shape)
        reason = ""
    except _Unsupported as e:
        ops, reason = None, f"no linear relaxation for {e}"
    emp, crown, lip = [], [], []
    lip_unit = _lipschitz(ops, v, spec) if ops is not None else torch.zeros(0)  # (n,)
    for r in radii:
        emp.append(attack(tail, flat, v, observable, float(r), steps=steps, restarts=restarts,
                          rng=rng, site_shape=shape))
        if ops is not None:
            with torch.no_grad():
                crown.append(torch.cat([
                    _crown(ops, flat[i:i + chunk], v, spec[i:i + chunk], combine,
                           g0[i:i + chunk] - observable.offset, float(r))
                    for i in range(0, len(flat), chunk)]))
                lip.append(float(r) * lip_unit)
    as_np = lambda ts: torch.stack(ts).numpy()  # noqa: E731
    if ops is None:
        return BoundResult(radii, g0.numpy(), as_np(emp), None, None, None, "empirical only",
                           reason)
    cr, li = as_np(crown), as_np(lip)
    best = np.minimum(cr, li)
    certified = best + ROUND_SLACK * (np.abs(g0.numpy())[None] + best)
    certified[radii == 0] = 0.0  # the ball is {0}: nothing to round
    return BoundResult(radii, g0.numpy(), as_np(emp), certified, cr, li, "certified", "")


# ----------------------------------------------------------------------------- subspaces
def complement(V: np.ndarray) -> np.ndarray:
    """Orthonormal basis (d, d − k) of the orthogonal complement of span(V) (V orthonormal)."""
    V = np.asarray(V, dtype=np.float64)
    q = np.linalg.qr(V, mode="complete")[0]  # (d, d); first k columns span V
    return q[:, V.shape[1]:]


def pca_split(acts: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """(V_relevant (d, keep), V_tail (d, d − keep)): top-`keep` principal directions of the
    centred activations (n, d) and the rest, from the SVD of the centred matrix."""
    a = np.asarray(acts, dtype=np.float64).reshape(len(acts), -1)
    if not 0 <= keep <= a.shape[1]:
        raise ValueError(f"keep={keep} must lie in [0, d={a.shape[1]}]")
    _, _, vt = np.linalg.svd(a - a.mean(0), full_matrices=True)  # vt (d, d)
    return vt[:keep].T.copy(), vt[keep:].T.copy()


def variance_fraction(acts: np.ndarray, V: np.ndarray) -> float:
    """Tr(Vᵀ Σ V) / Tr Σ: the share of the activations' variance inside span(V)."""
    a = np.asarray(acts, dtype=np.float64).reshape(len(acts), -1)
    c = a - a.mean(0)
    total = float((c**2).sum())
    return float(((c @ np.asarray(V, dtype=np.float64)) ** 2).sum() / total) if total else 0.0


def natural_scale(acts: np.ndarray, V: np.ndarray, quantile: float = 0.5) -> float:
    """Typical size of the activations' fluctuation inside span(V): the `quantile` over inputs
    of ‖Vᵀ(h − h̄)‖₂ (acts (n, d), h̄ their mean). Used as the radius ε at which a subspace is
    "certifiably irrelevant": a ball of that size holds the projection of most inputs."""
    a = np.asarray(acts, dtype=np.float64).reshape(len(acts), -1)
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile={quantile} must lie in [0, 1]")
    if len(a) == 0:
        raise ValueError("natural_scale needs at least one activation row")
    norms = np.linalg.norm((a - a.mean(0)) @ np.asarray(V, dtype=np.float64), axis=1)  # (n,)
    return float(np.quantile(norms, quantile))


@dataclass(frozen=True)
class Separation:
    tail: BoundResult
    relevant: BoundResult
    index: np.ndarray  # (n_eps,) mean tail bound / mean relevant bound
    variance_fraction: float | None  # tail's share of variance (None without activations)


def separation(model: nn.Module, h: np.ndarray | torch.Tensor, V_tail: np.ndarray,
               observable: Observable, eps: float | Sequence[float], *,
               V_relevant: np.ndarray | None = None, acts: np.ndarray | None = None,
               site: str | None = None, **kw) -> Separation:
    """Bounds for the tail subspace and the relevant one (its complement unless given) at equal
    ε; separation index = tail bound / relevant bound (certified, or empirical when the tail is
    empirical only), beside the tail's variance fraction in `acts` (n, d)."""
    V_tail = np.asarray(V_tail, dtype=np.float64)
    rel = complement(V_tail) if V_relevant is None else np.asarray(V_relevant, np.float64)
    t = bound(model, h, V_tail, observable, eps, site=site, **kw)
    r = bound(model, h, rel, observable, eps, site=site, **kw)
    num = t.certified if t.certified is not None else t.empirical
    den = r.certified if r.certified is not None else r.empirical
    with np.errstate(divide="ignore", invalid="ignore"):
        index = num.mean(1) / den.mean(1)
    frac = variance_fraction(acts, V_tail) if acts is not None else None
    return Separation(t, r, index, frac)


def table(sep: Separation) -> list[dict]:
    """One row per ε: mean certified / empirical for tail and relevant, ratio, index."""
    rows = []
    t, r = sep.tail, sep.relevant
    for i, e in enumerate(t.eps):
        cert = float(t.certified[i].mean()) if t.certified is not None else math.nan
        emp = float(t.empirical[i].mean())
        rows.append({"eps": float(e), "status": t.status, "certified": cert, "empirical": emp,
                     "ratio": cert / emp if emp > 0 else math.nan,
                     "relevant_certified": float(r.certified[i].mean())
                     if r.certified is not None else math.nan,
                     "relevant_empirical": float(r.empirical[i].mean()),
                     "separation_index": float(sep.index[i]),
                     "tail_variance_fraction": sep.variance_fraction})
    return rows
