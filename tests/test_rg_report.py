"""coarse_grain_site: one call from a site's activations to spectrum, cutoff, relevance per
level and faithfulness, written to disk."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tmr.rg import model_forward
from tmr.rg.report import coarse_grain_site


class Stub(nn.Module):
    """HookedModel stand-in: input -> layers.0.post -> relu MLP head (2 classes)."""

    sites = ("layers.0.post",)

    def __init__(self, d: int, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.l0 = nn.Linear(d, d).double()
        self.head = nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Linear(16, 2)).double()

    def forward_from(self, site: str, h: torch.Tensor) -> torch.Tensor:
        assert site == "layers.0.post"
        return self.head(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from("layers.0.post", self.l0(x))


def _planted(n: int = 300, d: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    a, _ = np.linalg.qr(rng.normal(size=(d, 3)))
    z = rng.normal(size=(n, 3))
    h = (z * [5.0, 3.0, 2.0]) @ a.T + 0.05 * rng.normal(size=(n, d))
    return h, z


def _read(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_pca_report_finds_planted_rank_and_level_modes(tmp_path: Path) -> None:
    h, z = _planted()
    model = Stub(h.shape[1])
    levels = {"root": (z[:, 0] > 0).astype(np.int64), "leaf": (z[:, 2] > 0).astype(np.int64)}
    rep = coarse_grain_site(h, scheme="pca", budget=0.05, out_dir=tmp_path, levels=levels,
                            forward=model_forward(model, "layers.0.post"))
    assert rep.k == 3
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["top_mode_per_level"] == {"root": 1, "leaf": 3}
    spec = _read(tmp_path / "spectrum.csv")
    assert len(spec) == h.shape[1] and float(spec[2]["tail_fraction"]) <= 0.05
    faith = _read(tmp_path / "faithfulness.csv")
    assert float(faith[0]["agreement"]) == 1.0  # all modes kept: the network is unchanged
    modes = np.load(tmp_path / "modes.npz")
    assert modes["kept"].shape == (h.shape[1], 3)
    assert (tmp_path / "spectrum.png").stat().st_size > 0
    assert (tmp_path / "faithfulness.png").stat().st_size > 0


def test_ck_feature_modes_equal_uncentred_pca(tmp_path: Path) -> None:
    h, _ = _planted(n=80, seed=2)
    rep = coarse_grain_site(h, scheme="ck", budget=0.05, out_dir=tmp_path, plots=False)
    kept = np.load(tmp_path / "modes.npz")["kept"]  # (d, k)
    _, vecs = np.linalg.eigh(h.T @ h)
    top = vecs[:, ::-1][:, :rep.k]
    assert np.allclose(np.abs(np.sum(kept * top, axis=0)), 1.0, atol=1e-8)


@pytest.mark.parametrize("scheme", ["ntk", "fisher"])
def test_parameter_space_schemes_write_spectrum_and_bayes(tmp_path: Path, scheme: str) -> None:
    rng = np.random.default_rng(3)
    x = torch.as_tensor(rng.normal(size=(40, 6)))
    model = Stub(6)
    with torch.no_grad():
        h = model.l0(x).numpy()
        target = model(x).argmax(1).numpy()
    rep = coarse_grain_site(h, scheme=scheme, budget=0.1, out_dir=tmp_path, model=model, x=x,
                            target=target, forward=model_forward(model, "layers.0.post"),
                            param_chunk=50, sample_chunk=16, plots=False)
    assert np.all(np.diff(rep.eigvals) <= 1e-9)
    assert 0 < rep.k <= rep.eigvals.size
    if scheme == "fisher":
        rows = _read(tmp_path / "bayes.csv")
        ks = [int(float(r["k"])) for r in rows]
        assert ks == sorted(ks, reverse=True) and ks[-1] == 0
        # k = 0 projects every parameter to 0: logits vanish and the loss is ln 2 (2 classes)
        with torch.no_grad():
            base = float(nn.functional.cross_entropy(model(x), torch.as_tensor(target)))
        assert float(rows[-1]["loss"]) == pytest.approx(np.log(2.0), abs=1e-12)
        assert float(rows[-1]["delta_loss"]) == pytest.approx(np.log(2.0) - base, abs=1e-12)


def test_unknown_scheme_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scheme="):
        coarse_grain_site(np.zeros((4, 2)), scheme="svd", budget=0.1, out_dir=tmp_path)


def test_cli_rg_flow_writes_flow_and_finds_spanning_fixed_point(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tmr.cli import app

    res = CliRunner().invoke(app, ["rg-flow", "-o", str(tmp_path), "--side", "32",
                                   "--n-samples", "40", "--steps", "2", "--p", "0.4:0.85:10"])
    assert res.exit_code == 0, res.output
    rows = _read(tmp_path / "flow.csv")
    assert len(rows) == 10 * 3
    summary = json.loads((tmp_path / "summary.json").read_text())
    # 40*16*16 = 10k blocks per p: R(p) std ≈ 0.005; the fitted p* is within 0.02 of 0.618
    assert summary["p_star"] == pytest.approx((np.sqrt(5) - 1) / 2, abs=0.02)
