"""Small networks with named hook sites: an MLP, 1-, 2- and 3-d hierarchical CNNs, a transformer.

Every model is a :class:`HookedModel`: an input adapter (``embed``) followed by a
list of *stages*, each a ``nn.Sequential`` of standard modules ending at a
:class:`~tmr.hooks.HookPoint`. The site names, in forward order, are::

    embed, layers.0.pre, layers.0.post, ..., head          (MLP, CNN)
    embed, layers.0.attn, layers.0.post, ..., head         (transformer)

(residual MLP layers expose only ``layers.{i}.post``, the residual stream). Because
the forward pass *is* "run the stages after the embedding", ``tail(site)`` (the
stages after ``site`` flattened into one ``nn.Sequential``) equals
``forward_from(site, h)`` exactly; bounds code walks ``tail``.

Inputs are token ids ``(batch, n_positions)`` (one-hot or a learned embedding is
applied per batch inside the model) or real values ``(batch, n_positions)``
(a linear read-in). :class:`InputSpec` says which; :func:`input_spec` derives it
from a data array, so other generators' files (images, padded sequences, point
clouds) need no change here. Outputs are logits ``(batch, n_classes)`` for one
target position, else ``(batch, n_targets, n_classes)``.

The hierarchical CNN follows Cagnetta et al., PRX 14, 031001 (2024), §2.1 of
``shared/docs/background.md``: filter size = stride = ``s``, so layer ``i``'s
positions are the nodes of tree level ``L - 1 - i``. Its 2-d analogue ``cnn2d``
(:class:`GridCNN`) merges ``s × s`` blocks of a lattice or image per layer (a
block-spin step: layer ``i`` sees ``s^(i+1) × s^(i+1)`` input blocks), then
averages over the remaining grid and reads out linearly; ``cnn3d`` (the same class)
merges ``s × s × s`` blocks of a volume (simple cubic percolation) with ``Conv3d``.
It restores the spatial shape from :attr:`InputSpec.shape` (data rows stay
flattened everywhere else).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from tmr.hooks import HookPoint

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU,
                                           "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh}
KINDS = ("mlp", "cnn", "cnn2d", "cnn3d", "transformer")
#: ids appended after the data's vocabulary: padding (data value -1) and mask
N_SPECIAL_TOKENS = 2


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """What the model reads: ``kind`` "tokens" (ids ``0..vocab_size-1``) or "real";
    ``n_positions`` values per sample (the data row flattened); ``shape`` the
    per-sample shape of the data before flattening (``()`` = unknown, 1-d);
    ``spatial_dims`` the number of lattice axes of a sample where the data declare
    it (percolation: the lattice's ``dim``; the other axis, if any, holds channels),
    0 = not declared."""

    kind: str
    n_positions: int
    vocab_size: int = 0
    shape: tuple[int, ...] = ()
    spatial_dims: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(v) for v in self.shape))  # JSON lists
        if self.shape and math.prod(self.shape) != self.n_positions:
            raise ValueError(f"InputSpec.shape={self.shape} does not hold n_positions="
                             f"{self.n_positions} values")
        if self.kind not in ("tokens", "real"):
            raise ValueError(f"InputSpec.kind={self.kind!r} must be 'tokens' or 'real'")
        if self.kind == "tokens" and self.vocab_size < 1:
            raise ValueError("token inputs need vocab_size >= 1")
        if not 0 <= self.spatial_dims <= len(self.shape):
            raise ValueError(f"InputSpec.spatial_dims={self.spatial_dims} must be in "
                             f"[0, {len(self.shape)}] for samples of shape {self.shape}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture (the ``[model]`` table of a training config).

    ``width``: hidden units / channels / d_model; ``n_layers``: hidden layers (CNN:
    None = as many as the tree has levels, ``log_s(n_positions)``; cnn2d / cnn3d: None =
    ``floor(log_s(shortest grid side))``); ``filter_size``: CNN filter = stride ``s``
    (None = the data's tuple size; cnn2d / cnn3d: 2); ``embedding``: "onehot" or
    "learned" (``embed_dim`` wide); ``readout``: transformer "pool" or "position";
    ``channel_axis``: cnn2d / cnn3d, for samples with one axis more than the grid,
    which axis holds channels (0 or -1; None = the axis of size <= 4, the first one if
    both are).
    """

    kind: str = "cnn"
    width: int = 64
    n_layers: int | None = None
    activation: str = "relu"
    residual: bool = False
    layer_norm: bool = False
    bias: bool = True
    embedding: str = "onehot"
    embed_dim: int = 16
    filter_size: int | None = None
    n_heads: int = 4
    mlp_ratio: int = 2
    readout: str = "pool"
    causal: bool = False
    channel_axis: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"model.kind={self.kind!r} is unknown; choose one of {KINDS}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"model.activation={self.activation!r} is unknown; choose one "
                             f"of {sorted(ACTIVATIONS)}")
        if self.embedding not in ("onehot", "learned"):
            raise ValueError(f"model.embedding={self.embedding!r} must be 'onehot' or 'learned'")
        if self.readout not in ("pool", "position"):
            raise ValueError(f"model.readout={self.readout!r} must be 'pool' or 'position'")
        if self.width < 1 or self.embed_dim < 1:
            raise ValueError("model.width and model.embed_dim must be positive")
        if self.n_layers is not None and self.n_layers < 1:
            raise ValueError(f"model.n_layers={self.n_layers} must be positive")
        if self.channel_axis not in (None, 0, -1):
            raise ValueError(f"model.channel_axis={self.channel_axis} must be 0 or -1 "
                             "(or omitted for auto)")


class Residual(nn.Module):
    """``y = x + inner(x)`` (a standard block bounds code knows how to walk)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.inner(x)


class SelfAttention(nn.Module):
    """``nn.MultiheadAttention`` as a one-input module (optionally causal)."""

    def __init__(self, d_model: int, n_heads: int, causal: bool) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.causal = causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, T, d) -> (batch, T, d)
        mask = None
        if self.causal:
            t = x.shape[1]
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        return self.attn(x, x, x, attn_mask=mask, need_weights=False)[0]


class MeanOverPositions(nn.Module):
    """``(batch, T, d) -> (batch, d)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


class Transpose(nn.Module):
    """``(batch, T, c) <-> (batch, c, T)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


class TokenInput(nn.Module):
    """Token ids ``(batch, T)`` -> ``(batch, T, e)``: one-hot (``e = vocab``), a learned
    embedding (``e = embed_dim``), or for real inputs the values as one channel."""

    def __init__(self, spec: InputSpec, embedding: str, embed_dim: int) -> None:
        super().__init__()
        self.spec = spec
        self.embedding = embedding if spec.kind == "tokens" else "real"
        self.table = (nn.Embedding(spec.vocab_size, embed_dim)
                      if self.embedding == "learned" else None)
        self.dim = {"onehot": spec.vocab_size, "learned": embed_dim, "real": 1}[self.embedding]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1)  # (batch, T)
        if self.embedding == "real":
            return x.to(torch.get_default_dtype()).unsqueeze(-1)
        # raw files' padding (-1) becomes the padding id, so raw x can be fed directly
        ids = x.long().masked_fill(x < 0, self.spec.vocab_size - N_SPECIAL_TOKENS)
        if self.table is not None:
            return self.table(ids)
        # one-hot by comparison (not F.one_hot, whose range check calls .item()): the
        # same tensor, and traceable by torch.func.vmap for per-sample Jacobians (eNTK)
        vocab = torch.arange(self.spec.vocab_size, device=ids.device)  # (vocab,)
        return (ids.unsqueeze(-1) == vocab).to(torch.get_default_dtype())


class HookedModel(nn.Module):
    """Base class: ``embed`` then ``stages``; site ``sites[k+1]`` follows ``stages[k]``.

    Subclasses fill ``self.embed`` (a module mapping the raw batch to the ``embed``
    activation) and call :meth:`_set_stages` with ``[(site_name, nn.Sequential)]``.
    """

    embed: nn.Module

    def __init__(self) -> None:
        super().__init__()
        self.hook_embed = HookPoint("embed")
        self.stages = nn.ModuleList()
        self.hooks = nn.ModuleList()
        self._sites: tuple[str, ...] = ("embed",)

    def _set_stages(self, stages: list[tuple[str, nn.Sequential]]) -> None:
        for name, stage in stages:
            self.stages.append(stage)
            self.hooks.append(HookPoint(name))
        self._sites = ("embed", *(name for name, _ in stages))

    @property
    def sites(self) -> tuple[str, ...]:
        """Hook names in forward order."""
        return self._sites

    def _index(self, site: str) -> int:
        try:
            return self._sites.index(site)
        except ValueError:
            raise ValueError(f"unknown site {site!r}; sites are {list(self._sites)}") from None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from("embed", self.hook_embed(self.embed(x)))

    def forward_from(self, site: str, h: torch.Tensor) -> torch.Tensor:
        """Continue the forward pass from activation ``h`` at ``site``."""
        for k in range(self._index(site), len(self.stages)):
            h = self.hooks[k](self.stages[k](h))
        return h

    def tail(self, site: str) -> nn.Sequential:
        """The standard modules after ``site``: ``tail(site)(h) == forward_from(site, h)``."""
        stages: list[nn.Sequential] = list(self.stages)[self._index(site):]  # type: ignore
        return nn.Sequential(*(m for stage in stages for m in stage))


def _head(d_in: int, n_targets: int, n_classes: int, bias: bool) -> list[nn.Module]:
    mods: list[nn.Module] = [nn.Flatten(), nn.Linear(d_in, n_targets * n_classes, bias=bias)]
    if n_targets > 1:
        mods.append(nn.Unflatten(1, (n_targets, n_classes)))
    return mods


class MLP(HookedModel):
    """Fully connected net on the flattened (one-hot/embedded) input."""

    def __init__(self, cfg: ModelConfig, spec: InputSpec, n_targets: int, n_classes: int):
        super().__init__()
        enc = TokenInput(spec, cfg.embedding, cfg.embed_dim)
        self.embed = nn.Sequential(enc, nn.Flatten())
        act = ACTIVATIONS[cfg.activation]
        d = spec.n_positions * enc.dim
        stages: list[tuple[str, nn.Sequential]] = []
        for i in range(cfg.n_layers or 3):
            if cfg.residual and d == cfg.width:
                inner: list[nn.Module] = [nn.LayerNorm(d)] if cfg.layer_norm else []
                inner += [nn.Linear(d, cfg.width, bias=cfg.bias), act()]
                stages.append((f"layers.{i}.post", nn.Sequential(Residual(nn.Sequential(*inner)))))
            else:
                pre: list[nn.Module] = [nn.LayerNorm(d)] if cfg.layer_norm else []
                stages.append((f"layers.{i}.pre",
                               nn.Sequential(*pre, nn.Linear(d, cfg.width, bias=cfg.bias))))
                stages.append((f"layers.{i}.post", nn.Sequential(act())))
            d = cfg.width
        stages.append(("head", nn.Sequential(*_head(d, n_targets, n_classes, cfg.bias))))
        self._set_stages(stages)


class HierarchicalCNN(HookedModel):
    """1-d CNN with filter size = stride = ``s``: ``n_positions = s**n_layers`` inputs
    are merged ``s`` at a time, mirroring the RHM tree (Cagnetta et al. 2024)."""

    def __init__(self, cfg: ModelConfig, spec: InputSpec, n_targets: int, n_classes: int):
        super().__init__()
        s = cfg.filter_size or 2
        if s < 2:
            raise ValueError(f"model.filter_size={s} must be at least 2")
        t = spec.n_positions
        n_layers = cfg.n_layers or max(round(math.log(t, s)), 1)
        if t % s**n_layers:
            raise ValueError(f"the hierarchical CNN needs n_positions divisible by "
                             f"filter_size**n_layers = {s}**{n_layers}, the data has {t} "
                             "positions; set model.filter_size / model.n_layers to match the "
                             "data's tuple size and depth")
        enc = TokenInput(spec, cfg.embedding, cfg.embed_dim)
        self.embed = nn.Sequential(enc, Transpose())  # (batch, channels, T)
        act = ACTIVATIONS[cfg.activation]
        c = enc.dim
        stages: list[tuple[str, nn.Sequential]] = []
        for i in range(n_layers):
            stages.append((f"layers.{i}.pre", nn.Sequential(
                nn.Conv1d(c, cfg.width, kernel_size=s, stride=s, bias=cfg.bias))))
            stages.append((f"layers.{i}.post", nn.Sequential(act())))
            c, t = cfg.width, t // s
        stages.append(("head", nn.Sequential(*_head(c * t, n_targets, n_classes, cfg.bias))))
        self._set_stages(stages)


#: spatial axes convolved by each grid CNN kind
GRID_DIMS = {"cnn2d": 2, "cnn3d": 3}
_NO_4D = "no grid CNN convolves more than 3 axes: use model.kind='mlp' or 'transformer'"


class GridInput(nn.Module):
    """Flat or shaped batch -> ``(batch, C·e, *grid)`` with ``d`` grid axes: each
    sample is reshaped to ``spec.shape`` (``grid``, ``(C, *grid)`` or ``(*grid, C)``),
    encoded per value by :class:`TokenInput` (``e`` = one-hot width, embedding width,
    or 1 for reals) and the channel and encoding axes are merged into conv channels."""

    def __init__(self, spec: InputSpec, embedding: str, embed_dim: int,
                 channel_axis: int | None):
        super().__init__()
        self.tokens = TokenInput(spec, embedding, embed_dim)
        self.shape = spec.shape
        self.channel_axis = channel_axis  # 0, -1, or None for samples without channels
        c = 1 if channel_axis is None else spec.shape[channel_axis]
        self.n_channels = c * self.tokens.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.tokens(x)  # (batch, T, e)
        h = h.reshape(len(h), *self.shape, h.shape[-1])  # (batch, *shape, e)
        if self.channel_axis is None:
            h = h.unsqueeze(1)  # (batch, 1, *grid, e)
        elif self.channel_axis == -1:
            h = h.movedim(-2, 1)  # (batch, C, *grid, e)
        h = h.movedim(-1, 2)  # (batch, C, e, *grid)
        return h.reshape(len(h), self.n_channels, *h.shape[3:])  # (batch, C·e, *grid)


def _grid_layout(kind: str, spec: InputSpec, given: int | None) -> int | None:
    """The channel axis (None, 0 or -1) of ``spec.shape`` for grid CNN ``kind``, after
    checking that the samples have the kind's number of grid axes (and, where the
    data declare it, ``spec.spatial_dims``); a ValueError names the fix otherwise."""
    d, shape = GRID_DIMS[kind], spec.shape
    grid = "(H, W)" if d == 2 else "(D, H, W)"
    other = {2: "cnn3d", 3: "cnn2d"}[d]
    if spec.spatial_dims and spec.spatial_dims != d:
        fix = (f"use model.kind={other!r}" if spec.spatial_dims in (2, 3) else
               f"{_NO_4D}, or generate a lattice of dim <= 3 (square, triangular, cubic)")
        raise ValueError(f"model.kind={kind!r} convolves {d} spatial axes, the data are "
                         f"{spec.spatial_dims}-d lattices (samples of shape {shape}); {fix}")
    if len(shape) == d:
        return None
    if len(shape) != d + 1:
        hint = ""
        if len(shape) == 2 and d == 3:
            hint = "; 2-d samples fit model.kind='cnn2d'"
        elif len(shape) == 4 and d == 2:
            hint = "; (C, D, H, W) volumes fit model.kind='cnn3d'"
        elif len(shape) > 4:
            hint = f"; {_NO_4D}"
        raise ValueError(f"model.kind={kind!r} needs samples of shape {grid}, (C, {grid[1:]} "
                         f"or ({grid[1:-1]}, C); the data's samples have shape "
                         f"{shape or '1-d'}{hint}")
    if given is not None:
        return given
    if shape[0] <= 4:
        return 0
    if shape[-1] <= 4:
        return -1
    looks = ("; if they are 3-d volumes use model.kind='cnn3d'" if d == 2 else
             f"; if they are 4-d lattices, {_NO_4D}")
    raise ValueError(f"cannot tell the channel axis of samples of shape {shape}: set "
                     f"model.channel_axis = 0 or -1{looks}")


class GridCNN(HookedModel):
    """``d``-dimensional CNN (``cnn2d``: d = 2, ``cnn3d``: d = 3) with ``s^d`` filters
    of stride ``s`` (non-overlapping blocks, the lattice analogue of
    :class:`HierarchicalCNN`: one block-spin step per layer), ``n_layers`` blocks
    ``layers.i.pre`` (Conv2d/Conv3d) / ``layers.i.post`` (activation), then ``head`` =
    global average pool over the remaining grid, Flatten, Linear. Grid sides
    shrink as ``L -> floor(L / s)`` (leftover rows/columns/planes are dropped)."""

    def __init__(self, cfg: ModelConfig, spec: InputSpec, n_targets: int, n_classes: int):
        super().__init__()
        s = cfg.filter_size or 2
        if s < 2:
            raise ValueError(f"model.filter_size={s} must be at least 2")
        d = GRID_DIMS[cfg.kind]
        axis = _grid_layout(cfg.kind, spec, cfg.channel_axis)
        sides = [v for k, v in enumerate(spec.shape) if axis is None or k != axis % (d + 1)]
        n_layers = cfg.n_layers or max(math.floor(math.log(min(sides), s) + 1e-9), 1)
        if min(sides) < s**n_layers:
            raise ValueError(f"{cfg.kind} with filter_size={s} and n_layers={n_layers} needs "
                             f"grids of at least {s**n_layers} sites a side, the data has "
                             f"{' x '.join(map(str, sides))}; lower model.n_layers or "
                             "model.filter_size")
        enc = GridInput(spec, cfg.embedding, cfg.embed_dim, axis)
        self.embed = enc
        act = ACTIVATIONS[cfg.activation]
        conv, pool = (nn.Conv2d, nn.AvgPool2d) if d == 2 else (nn.Conv3d, nn.AvgPool3d)
        c = enc.n_channels
        stages: list[tuple[str, nn.Sequential]] = []
        for i in range(n_layers):
            stages.append((f"layers.{i}.pre", nn.Sequential(
                conv(c, cfg.width, kernel_size=s, stride=s, bias=cfg.bias))))
            stages.append((f"layers.{i}.post", nn.Sequential(act())))
            c, sides = cfg.width, [v // s for v in sides]
        grid: tuple = tuple(sides)  # the remaining grid, averaged whole
        stages.append(("head", nn.Sequential(pool(grid),
                                             *_head(c, n_targets, n_classes, cfg.bias))))
        self._set_stages(stages)


class Transformer(HookedModel):
    """Pre-LN transformer encoder: token + position embeddings, ``n_layers`` blocks
    (``layers.i.attn`` after attention, ``layers.i.post`` after the MLP), pooled or
    per-position readout."""

    def __init__(self, cfg: ModelConfig, spec: InputSpec, n_targets: int, n_classes: int):
        super().__init__()
        d = cfg.width
        if d % cfg.n_heads:
            raise ValueError(f"model.width={d} must be divisible by model.n_heads={cfg.n_heads}")
        self.embed = _TransformerEmbed(spec, d)
        stages: list[tuple[str, nn.Sequential]] = []
        for i in range(cfg.n_layers or 2):
            stages.append((f"layers.{i}.attn", nn.Sequential(Residual(nn.Sequential(
                nn.LayerNorm(d), SelfAttention(d, cfg.n_heads, cfg.causal))))))
            stages.append((f"layers.{i}.post", nn.Sequential(Residual(nn.Sequential(
                nn.LayerNorm(d), nn.Linear(d, cfg.mlp_ratio * d), nn.GELU(),
                nn.Linear(cfg.mlp_ratio * d, d))))))
        head: list[nn.Module] = [nn.LayerNorm(d)]
        if cfg.readout == "position":
            if n_targets != spec.n_positions:
                raise ValueError(f"readout='position' predicts one target per input position "
                                 f"({spec.n_positions}), the task has {n_targets}; use "
                                 "model.readout='pool'")
            head.append(nn.Linear(d, n_classes))
        else:
            head += [MeanOverPositions(), *_head(d, n_targets, n_classes, True)[1:]]
        stages.append(("head", nn.Sequential(*head)))
        self._set_stages(stages)


class _TransformerEmbed(nn.Module):
    def __init__(self, spec: InputSpec, d: int) -> None:
        super().__init__()
        self.tokens = TokenInput(spec, "learned", d)
        self.read_in = nn.Linear(1, d) if spec.kind == "real" else None
        self.positions = nn.Parameter(torch.zeros(spec.n_positions, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, T) -> (batch, T, d)
        h = self.tokens(x)
        if self.read_in is not None:
            h = self.read_in(h)
        return h + self.positions


def build_model(cfg: ModelConfig, spec: InputSpec, n_targets: int, n_classes: int,
                generator: torch.Generator | None = None) -> HookedModel:
    """The model ``cfg.kind`` for inputs ``spec`` and ``n_targets`` outputs of
    ``n_classes`` logits, initialised from ``generator`` (no global seeding)."""
    cls = {"mlp": MLP, "cnn": HierarchicalCNN, "cnn2d": GridCNN, "cnn3d": GridCNN,
           "transformer": Transformer}[cfg.kind]
    if cfg.readout == "position" and cfg.kind != "transformer":
        raise ValueError("model.readout='position' is for the transformer only")
    model = cls(cfg, spec, n_targets, n_classes)
    if generator is not None:
        init_parameters(model, generator)
    return model


def init_parameters(model: nn.Module, generator: torch.Generator) -> None:
    """Re-draw every parameter with PyTorch's default schemes, from ``generator``:
    Linear/Conv weights Kaiming-uniform (a=√5), biases U(±1/√fan_in); embeddings
    N(0, 1); attention in-projections Xavier-uniform; learned positions N(0, 0.02²)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                if m.bias is not None:
                    fan_in = m.weight[0].numel()
                    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                    nn.init.uniform_(m.bias, -bound, bound, generator=generator)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, generator=generator)
            elif isinstance(m, nn.MultiheadAttention):
                if m.in_proj_weight is not None:
                    nn.init.xavier_uniform_(m.in_proj_weight, generator=generator)
                if m.in_proj_bias is not None:
                    nn.init.zeros_(m.in_proj_bias)
            elif isinstance(m, _TransformerEmbed):
                nn.init.normal_(m.positions, std=0.02, generator=generator)
            elif isinstance(m, nn.LayerNorm):
                m.reset_parameters()


def input_spec(x_shape: tuple[int, ...], is_integer: bool, data_vocab: int,
               spatial_dims: int = 0) -> InputSpec:
    """The :class:`InputSpec` of data ``x`` with shape ``(n, ...)``: integer data are
    tokens ``0..data_vocab-1`` plus a padding id ``data_vocab`` (for ``-1``) and a
    mask id ``data_vocab + 1``; real data are values. Rows are flattened; their
    shape is kept in ``spec.shape`` (what ``cnn2d`` / ``cnn3d`` read), with the
    data's declared lattice dimension ``spatial_dims`` (0 = none)."""
    n_positions = math.prod(x_shape[1:]) or 1
    shape = tuple(x_shape[1:]) if len(x_shape) > 1 else ()
    if is_integer:
        return InputSpec("tokens", n_positions, data_vocab + N_SPECIAL_TOKENS, shape,
                         spatial_dims)
    return InputSpec("real", n_positions, shape=shape, spatial_dims=spatial_dims)
