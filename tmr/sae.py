"""Sparse autoencoders (SAEs) on a site's activations, and the SAE as an RG scheme.

Model (Bricken et al. 2023; Gao et al. 2024; Bussmann et al. 2025). Inputs are
standardised by a fixed centre c and scalar scale σ (E‖x − c‖² = d σ²), u = (x − c)/σ:

    pre = (u − b_dec) W_enc + b_enc            (n, m)
    f   = ReLU(pre)                            kind "relu"  (loss + λ Σ_j f_j / √d)
    f   = TopK_k(ReLU(pre))                    kind "topk"  (exactly ≤ k active)
    f   = TopK_k(ReLU(pre))                    kind "matryoshka" (nested prefixes)
    û   = f W_dec + b_dec,   x̂ = c + σ û       decoder rows ‖W_dec[j]‖ = 1

Loss: mean ‖u − û‖² / d (relu adds λ mean Σ_j f_j / √d: codes of a standardised input
scale like √d, so one λ suits every site width); Matryoshka sums the reconstruction loss
over the prefix widths m_1 < … < m_P = m, using only the first m_p codes for prefix p.
Adam on mini-batches for a fixed number of epochs; decoder rows renormalised after every
step. Deterministic on CPU given the seed stream (initialisation and batch order come from
it). Files: ``sae_<kind>_<width>_seed<k>.pt`` (weights + config) and the same stem ``.json``.

As a scheme, scale = number of dictionary features kept. Matryoshka keeps the first
``scale`` features (its prefix); relu/topk keep the ``scale`` features of largest relevance
r_j = E[f_j] ‖W_dec[j]‖ (mean activation times decoder norm: the feature's mean
contribution to the reconstruction's length).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from generators._rng import as_generator
from tmr.rg.base import CoarseGrained

Kind = Literal["relu", "topk", "matryoshka"]
KINDS: tuple[str, ...] = ("relu", "topk", "matryoshka")
# Relative singular value below which decoder directions count as linearly dependent.
SPAN_TOL = 1e-8


@dataclass(frozen=True)
class SAEConfig:
    """Hyper-parameters of one SAE.

    Attributes:
        kind: ``relu`` (ReLU + L1), ``topk`` or ``matryoshka``.
        width: dictionary size m (> 0).
        k: active features per sample for topk / matryoshka.
        l1: L1 coefficient λ for relu (the penalty is λ Σ_j f_j / √d; 0.15 gives about 15
            active features of 256 on the demo CNN's first layer, d = 256; 0.03 per unit
            without the √d made every feature die there at widths ≥ 1024).
        prefixes: Matryoshka prefix widths (increasing, last = width); default: width/8,
            width/4, width/2, width (those ≥ 1).
        epochs: passes over the activations (raised so that at least ``min_steps`` Adam
            steps run on small activation sets).
        min_steps: least number of Adam steps.
        batch_size: rows per Adam step.
        lr: Adam learning rate.
    """

    kind: str = "topk"
    width: int = 512
    k: int = 16
    l1: float = 0.15
    prefixes: tuple[int, ...] = field(default_factory=tuple)
    epochs: int = 3
    min_steps: int = 250
    batch_size: int = 1024
    lr: float = 2e-3

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"SAE kind={self.kind!r}: use one of {list(KINDS)}")
        if int(self.width) <= 0:
            raise ValueError(f"SAE width={self.width}: give a dictionary width > 0")
        if self.kind != "relu" and not 1 <= self.k <= self.width:
            raise ValueError(f"SAE k={self.k}: give 1 ≤ k ≤ width={self.width} active features")
        if self.epochs <= 0 or self.min_steps < 0 or self.batch_size <= 0 or self.lr <= 0:
            raise ValueError("SAE epochs, batch_size and lr must be > 0, min_steps ≥ 0")
        if self.kind == "matryoshka":
            p = self.prefixes or tuple(sorted({max(self.width // f, 1) for f in (8, 4, 2, 1)}))
            if list(p) != sorted(set(p)) or p[-1] != self.width or p[0] < 1:
                raise ValueError(f"prefixes={list(p)}: give increasing widths ending at "
                                 f"width={self.width}")
            object.__setattr__(self, "prefixes", tuple(int(v) for v in p))


class SparseAutoencoder(nn.Module):
    """Encoder/decoder of the module docstring; ``forward`` returns (codes, reconstruction)."""

    centre: torch.Tensor
    scale: torch.Tensor

    def __init__(self, d: int, config: SAEConfig):
        super().__init__()
        self.config = config
        m = config.width
        self.W_enc = nn.Parameter(torch.zeros(d, m))
        self.b_enc = nn.Parameter(torch.zeros(m))
        self.W_dec = nn.Parameter(torch.zeros(m, d))
        self.b_dec = nn.Parameter(torch.zeros(d))
        self.register_buffer("centre", torch.zeros(d))
        self.register_buffer("scale", torch.ones(()))

    def _pre(self, u: torch.Tensor) -> torch.Tensor:
        return torch.relu((u - self.b_dec) @ self.W_enc + self.b_enc)  # (n, m)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes f ``(n, m)`` of raw activations ``x`` ``(n, d)``."""
        pre = self._pre((x - self.centre) / self.scale)
        if self.config.kind == "relu":
            return pre
        val, idx = torch.topk(pre, self.config.k, dim=1)  # (n, k)
        return torch.zeros_like(pre).scatter_(1, idx, val)

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """Raw-unit reconstruction x̂ = c + σ (f W_dec + b_dec), ``(n, d)``."""
        return self.centre + self.scale * (f @ self.W_dec + self.b_dec)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.encode(x)
        return f, self.decode(f)

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        """Rescale decoder rows to unit norm: ‖W_dec[j]‖ = 1."""
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Training loss of the module docstring on a batch ``(b, d)`` of raw activations.

        TopK codes are decoded sparsely (``embedding_bag`` over the k active rows of W_dec),
        so the decoder costs O(k d) per sample instead of O(m d).
        """
        u = (x - self.centre) / self.scale
        pre = self._pre(u)
        d = x.shape[1]
        if self.config.kind == "relu":
            rec = pre @ self.W_dec + self.b_dec
            return (((u - rec) ** 2).sum(1).mean() / d
                    + self.config.l1 * pre.sum(1).mean() / math.sqrt(d))
        val, idx = torch.topk(pre, self.config.k, dim=1)  # (b, k)
        prefixes = self.config.prefixes if self.config.kind == "matryoshka" else (0,)
        total = x.new_zeros(())
        for p in prefixes:
            w = val if p == 0 or p == self.config.width else val * (idx < p)
            rec = nn.functional.embedding_bag(idx, self.W_dec, per_sample_weights=w,
                                              mode="sum") + self.b_dec  # (b, d)
            total = total + ((u - rec) ** 2).sum(1).mean() / d
        return total


def train_sae(acts: np.ndarray | torch.Tensor, config: SAEConfig,
              rng: int | np.random.SeedSequence | np.random.Generator = 0, *,
              device: str | torch.device = "cpu",
              progress: Callable[[int, int], None] | None = None) -> SparseAutoencoder:
    """Train an SAE on ``acts`` ``(n, d)`` (flattened per sample); returns it on the CPU.

    Initialisation: W_dec rows uniform on the sphere, W_enc = W_decᵀ, b_enc = 0,
    b_dec = 0 with the centre c = mean(x) and σ² = E‖x − c‖²/d. ``rng`` seeds the
    initialisation and the batch order; ``progress(done_steps, total_steps)``.
    """
    x = torch.as_tensor(np.asarray(acts, dtype=np.float32)).reshape(len(acts), -1)  # (n, d)
    n, d = x.shape
    if n == 0 or d == 0:
        raise ValueError(f"train_sae needs activations (n > 0, d > 0), got shape {tuple(x.shape)}")
    gen = as_generator(rng)
    dev = torch.device(device)
    model = SparseAutoencoder(d, config)
    w = torch.as_tensor(gen.standard_normal((config.width, d)), dtype=torch.float32)
    with torch.no_grad():
        model.W_dec.copy_(w)
        model.normalise_decoder()
        model.W_enc.copy_(model.W_dec.T)
        centre = x.mean(0)
        model.centre.copy_(centre)
        model.scale.copy_(((x - centre) ** 2).sum(1).mean().div(d).sqrt().clamp_min(1e-12))
    model = model.to(dev)
    xd = x.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    bs = min(config.batch_size, n)
    per_epoch = math.ceil(n / bs)
    epochs = max(config.epochs, math.ceil(config.min_steps / per_epoch))
    total = per_epoch * epochs
    step = 0
    for _ in range(epochs):
        order = torch.as_tensor(gen.permutation(n), device=dev)
        for b in range(per_epoch):
            batch = xd[order[b * bs:(b + 1) * bs]]
            opt.zero_grad(set_to_none=True)
            model.loss(batch).backward()
            opt.step()
            model.normalise_decoder()
            step += 1
            if progress is not None:
                progress(step, total)
    return model.cpu().eval()


@torch.no_grad()
def encode(model: SparseAutoencoder, acts: np.ndarray, batch: int = 8192) -> np.ndarray:
    """Codes ``(n, m)`` float64 of ``acts`` ``(n, ...)``, in batches."""
    x = np.asarray(acts, dtype=np.float32).reshape(len(acts), -1)
    out = [model.encode(torch.as_tensor(x[i:i + batch])).numpy() for i in range(0, len(x), batch)]
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, model.config.width))


def dictionary(model: SparseAutoencoder) -> tuple[np.ndarray, np.ndarray]:
    """(decoder D ``(m, d)`` in raw units σ W_dec, offset ``(d,)`` c + σ b_dec): x̂ = f D + b."""
    with torch.no_grad():
        s = float(model.scale)
        return ((model.W_dec * s).double().numpy(),
                (model.centre + s * model.b_dec).double().numpy())


def feature_order(model: SparseAutoencoder, codes: np.ndarray) -> np.ndarray:
    """Features by decreasing relevance: index order for Matryoshka (its prefixes);
    otherwise by r_j = mean_i f_ij · ‖D_j‖ (stable sort)."""
    if model.config.kind == "matryoshka":
        return np.arange(model.config.width)
    dec, _ = dictionary(model)
    rel = codes.mean(0) * np.linalg.norm(dec, axis=1)
    return np.argsort(-rel, kind="stable")


def span_complement(modes: np.ndarray) -> np.ndarray:
    """Orthonormal basis ``(d, d − r)`` of the complement of span(modes ``(d, k)``)."""
    d = modes.shape[0]
    if modes.shape[1] == 0:
        return np.eye(d)
    u, s, _ = np.linalg.svd(modes, full_matrices=True)
    r = int((s > SPAN_TOL * max(s[0], 1e-300)).sum())
    return u[:, r:].copy()


class SAEScheme:
    """An SAE as a ``tmr.rg`` scheme on activations ``(n, d)``; scale = features kept.

    ``CoarseGrained``: coarse = codes of the kept features ``(n, s)``, modes = their unit
    decoder directions ``(d, s)``, relevance r_j (module docstring), remainder = x − x̂_s with
    x̂_s = Σ_{j kept} f_j D_j + b, tail_basis = orthonormal complement of the kept decoder
    span (what ``tmr bound`` perturbs). Give a trained ``model``, or a ``config`` and ``rng``
    to train on the first representation seen.
    """

    def __init__(self, model: SparseAutoencoder | None = None, *,
                 config: SAEConfig | None = None,
                 rng: int | np.random.SeedSequence | np.random.Generator = 0,
                 device: str = "cpu"):
        if model is None and config is None:
            raise ValueError("SAEScheme needs a trained model or a config to train one")
        self.model = model
        self.config = model.config if model is not None else config
        assert self.config is not None
        self.name = "matryoshka" if self.config.kind == "matryoshka" else f"sae-{self.config.kind}"
        self._rng, self._device = rng, device

    def __call__(self, representation: np.ndarray, scale: float) -> CoarseGrained:
        x = np.asarray(representation, dtype=np.float64).reshape(len(representation), -1)
        if self.model is None:
            assert self.config is not None
            self.model = train_sae(x, self.config, self._rng, device=self._device)
        m = self.model.config.width
        s = int(scale)
        if s != scale or not 0 <= s <= m:
            raise ValueError(f"scale={scale}: give an integer number of kept features in "
                             f"[0, {m}]")
        codes = encode(self.model, x)  # (n, m)
        dec, off = dictionary(self.model)  # (m, d), (d,)
        order = feature_order(self.model, codes)
        keep, drop = order[:s], order[s:]
        norms = np.linalg.norm(dec, axis=1)
        rel = codes.mean(0) * norms
        recon = codes[:, keep] @ dec[keep] + off  # (n, d)
        modes = (dec[keep] / np.maximum(norms[keep], 1e-300)[:, None]).T  # (d, s)
        return CoarseGrained(coarse=codes[:, keep], modes=modes, relevance=rel[keep],
                             tail_basis=span_complement(modes), tail_relevance=None,
                             remainder=x - recon, scale=float(s), scheme=self.name,
                             meta={"kept_index": keep, "tail_index": drop, "offset": off,
                                   "width": m})


def sae_path(out_dir: str | Path, kind: str, width: int, seed: int) -> Path:
    """``out_dir/sae_<kind>_<width>_seed<seed>.pt``."""
    return Path(out_dir) / f"sae_{kind}_{width}_seed{seed}.pt"


def save_sae(model: SparseAutoencoder, out_dir: str | Path, seed: int,
             extra: dict[str, Any] | None = None) -> Path:
    """Write the weights (``.pt``) and the config (``.json``, with ``extra``) atomically."""
    from tmr import io

    cfg = model.config
    path = sae_path(out_dir, cfg.kind, cfg.width, seed)
    record = {"config": asdict(cfg), "d": int(model.W_dec.shape[1]), "seed": seed,
              **(extra or {})}
    with io.atomic_path(path) as tmp:
        torch.save({"state_dict": model.state_dict(), **record}, tmp)
    with io.atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=list))
    return path


def load_sae(path: str | Path) -> SparseAutoencoder:
    """An SAE written by :func:`save_sae`."""
    state = torch.load(Path(path), map_location="cpu", weights_only=False)
    raw = dict(state["config"])
    raw["prefixes"] = tuple(raw.get("prefixes", ()))
    model = SparseAutoencoder(int(state["d"]), SAEConfig(**raw))
    model.load_state_dict(state["state_dict"])
    return model.eval()


def tool_kind(tool: str) -> str:
    """'sae-topk' → 'topk', 'sae-relu' → 'relu', 'matryoshka' → 'matryoshka'."""
    kind = tool.removeprefix("sae-")
    if kind not in KINDS:
        raise ValueError(f"unknown SAE tool {tool!r}; use sae-relu, sae-topk or matryoshka")
    return kind


def sae_split(sae_dir: str | Path, tool: str, acts: np.ndarray, keep: int,
              widths: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(V_relevant ``(d, r)`` orthonormal span of the ``keep`` kept decoder directions,
    V_tail ``(d, d − r)`` its complement) of the widest saved SAE of ``tool`` in
    ``sae_dir`` (``tmr evaluate-tools`` writes them), for ``tmr bound``."""
    kind = tool_kind(tool)
    files = sorted(Path(sae_dir).glob(f"sae_{kind}_*_seed*.pt"),
                   key=lambda p: (int(p.stem.split("_")[2]), p.stem))
    if widths is not None:
        files = [p for p in files if int(p.stem.split("_")[2]) in set(widths)]
    if not files:
        raise ValueError(f"no saved {tool} SAE in {str(sae_dir)!r}; train one first with "
                         f"`tmr evaluate-tools RUN --site SITE --tools {tool}`")
    cg = SAEScheme(load_sae(files[-1]))(acts, keep)
    tail = cg.tail_basis
    assert tail is not None
    if tail.shape[1] == 0:
        raise ValueError(f"keep={keep} {tool} features span the whole site; keep fewer")
    return span_complement(tail), tail
