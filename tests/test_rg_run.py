"""`tmr coarse-grain` and `tmr rg-flow --data` end to end on real (tiny) runs and files:
a CNN trained by tmr.train.run on an RHM file, and a generated percolation file."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tmr import io
from tmr.cli import app
from tmr.config import data_config_from_dict, from_dict
from tmr.probes import collect_activations
from tmr.rg.block import spanning_map_2x2
from tmr.train import TrainConfig, load_run, run

SITE = "layers.1.post"
N_CG = 24  # samples coarse-grained: kernels are (24, 24), the site has 8 x 2 = 16 features
RHM = {"name": "rhm", "vocab_size": 8, "n_classes": 8, "n_synonyms": 2, "tuple_size": 2,
       "n_levels": 3}
# a few steps of a width-8 CNN; probing only one site and level keeps training ~1 s
TINY = {"seed": 1, "device": "cpu", "model": {"kind": "cnn", "width": 8},
        "optim": {"steps": 16, "eval_every": 8, "batch_size": 32},
        "probe": {"sites": [SITE], "levels": ["root"], "max_samples": 64, "inner_folds": 2,
                  "ridge_grid": [1.0], "control": False}}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("rg_run")
    data = io.write_dataset(tmp / "rhm.h5", data_config_from_dict(
        {"seed": 0, "n_samples": 200, "generator": RHM, "splits": {"test_fraction": 0.3}}))
    torch.set_num_threads(1)
    run(from_dict(TrainConfig, {**TINY, "data_path": str(data)}), tmp / "run")
    return tmp / "run"


def _read(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def _coarse_grain(run_dir: Path, scheme: str, out: Path) -> Path:
    res = CliRunner().invoke(app, ["coarse-grain", str(run_dir), "--site", SITE, "--scheme",
                                   scheme, "--budget", "0.05", "--n-samples", str(N_CG),
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def _inputs(run_dir: Path) -> tuple[Any, torch.Tensor, np.ndarray]:
    model, _, data_path = load_run(run_dir)
    sample, _ = io.read(data_path, "test")
    x = torch.as_tensor(np.asarray(sample.x[:N_CG]))  # (N_CG, 8) tokens
    root = np.asarray(sample.levels[0][:N_CG]).reshape(N_CG, -1)[:, 0]  # (N_CG,)
    return model.eval(), x, root


def _kernel_trace(model: Any, x: torch.Tensor, scheme: str, root: np.ndarray) -> float:
    """tr Θ = Σ_i Σ_c |∂f_c(x_i)/∂θ|² (ntk) or Σ_i |∇θ log p(y_i|x_i)|² (Fisher), one
    autograd call per sample and output: the plain loop the chunked vmap must match."""
    params = [p for p in model.parameters() if p.requires_grad]
    total = 0.0
    for i in range(len(x)):
        out = model(x[i:i + 1])[0]  # (n_classes,)
        targets = ([out[c] for c in range(out.shape[0])] if scheme == "ntk"
                   else [torch.log_softmax(out, 0)[int(root[i])]])
        for t in targets:
            grads = torch.autograd.grad(t, params, retain_graph=True)
            total += float(sum((g.double() ** 2).sum() for g in grads))
    return total


@pytest.mark.parametrize("scheme", ["pca", "ck", "ntk", "fisher"])
def test_coarse_grain_cli_on_a_trained_run_is_exact_at_full_rank(
        run_dir: Path, tmp_path: Path, scheme: str) -> None:
    """Budget cutoff, orthonormal modes, unchanged network with every mode kept, and the
    spectrum against an independent computation: PCA eigenvalues = those of the
    covariance of tmr.probes.collect_activations; ck: their sum is |H|²_F / d; ntk and
    Fisher: their sum is the kernel trace from plain autograd."""
    out = _coarse_grain(run_dir, scheme, tmp_path / scheme)
    summary = json.loads((out / "summary.json").read_text())
    spec = _read(out / "spectrum.csv")
    faith = _read(out / "faithfulness.csv")
    assert summary["n"] == N_CG and summary["d"] == 16 and len(spec) == summary["n_modes"]
    vals = np.array([float(r["eigenvalue"]) for r in spec])
    assert np.all(vals >= 0) and np.all(np.diff(vals) <= 1e-9 * vals[0])
    k = summary["k"]
    assert 0 < k <= vals.size and vals[k:].sum() <= 0.05 * vals.sum() + 1e-12
    assert k == 1 or vals[k - 1:].sum() > 0.05 * vals.sum()  # the smallest such k
    assert {"probe:root", "probe:level1", "probe:level2", "probe:level3"} <= set(faith[0])
    ks = [int(float(r["k"])) for r in faith]
    assert ks == sorted(ks, reverse=True) and ks[-1] == 0
    # the site's full kept basis spans its activations: the network output is unchanged
    model, x, root = _inputs(run_dir)
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    if summary["n_site_modes"] == summary["d"]:
        assert float(faith[0]["agreement"]) == 1.0
        assert float(faith[0]["mse_to_full"]) < 1e-10
        assert float(faith[0]["accuracy"]) == pytest.approx(float((pred == root).mean()))
    modes = np.load(out / "modes.npz")
    kept, tail = modes["kept"], modes["tail"]  # (16, k_site), (16, r - k_site)
    basis = np.hstack([kept, tail])
    assert np.allclose(basis.T @ basis, np.eye(basis.shape[1]), atol=1e-8)
    assert (out / "spectrum.png").stat().st_size > 0 and (out / "faithfulness.png").is_file()
    if scheme == "fisher":
        assert [int(float(r["k"])) for r in _read(out / "bayes.csv")][-1] == 0
    h = collect_activations(model, x, [SITE])[SITE].astype(np.float64)  # (N_CG, 16)
    if scheme == "pca":
        want = np.sort(np.linalg.eigvalsh(np.cov(h.T, bias=True)))[::-1]
        assert np.allclose(vals, want, rtol=1e-6, atol=1e-9 * want[0])
    elif scheme == "ck":
        assert vals.sum() == pytest.approx((h ** 2).sum() / h.shape[1], rel=1e-6)
    else:
        # float32 Jacobians summed in float64: agreement to ~1e-5 relative
        assert vals.sum() == pytest.approx(_kernel_trace(model, x, scheme, root), rel=1e-4)


def test_coarse_grain_rejects_an_unknown_site(run_dir: Path) -> None:
    res = CliRunner().invoke(app, ["coarse-grain", str(run_dir), "--site", "layers.9.post"])
    assert res.exit_code == 2 and "layers.9.post" in res.output


# ---------------------------------------------------------------------- rg-flow --data

PS = (0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)


@pytest.fixture(scope="module")
def percolation_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = data_config_from_dict({
        "seed": 3, "n_samples": 40, "splits": {"test_fraction": 0.25},
        "generator": {"name": "percolation", "lattice": "square", "size": 32, "kind": "site",
                      "ps": list(PS), "boundary": "free", "site_truth": False}})
    return io.write_dataset(tmp_path_factory.mktemp("perc") / "perc.h5", cfg)


def test_rg_flow_on_a_percolation_file_measures_the_spanning_map(percolation_file: Path,
                                                                 tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["rg-flow", "-o", str(tmp_path), "--data",
                                   str(percolation_file), "--rule", "spanning", "--steps", "2"])
    assert res.exit_code == 0, res.output
    rows = _read(tmp_path / "flow.csv")
    assert len(rows) == len(PS) * 3
    sample, _ = io.read(percolation_file)
    for j, p in enumerate(PS):
        step0 = [r for r in rows if float(r["p"]) == pytest.approx(p) and r["step"] == "0.0"]
        rung = sample.levels[len(PS) - 1 - j]  # levels are highest p first
        assert float(step0[0]["density"]) == pytest.approx(float((rung > 0).mean()))
    for step in ("0.0", "1.0", "2.0"):
        # the rungs are nested and the spanning rule is monotone: density rises with p
        dens = [float(r["density"]) for r in rows if r["step"] == step]
        assert dens == sorted(dens)
    # 40 * 16 * 16 = 10240 independent 2x2 blocks per p: R(p) std <= 0.005, so 0.02 is 4σ
    r1 = np.array([float(r["density"]) for r in rows if r["step"] == "1.0"])
    assert np.allclose(r1, spanning_map_2x2(np.array(PS)), atol=0.02)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["side"] == 32 and summary["world"]["lattice"] == "square"
    # p* moves by δR / (R'(p*) - 1) ≈ 0.005 / 0.53 ≈ 0.01 per σ of R: 0.04 is 4σ
    assert summary["p_star"] == pytest.approx((np.sqrt(5) - 1) / 2, abs=0.04)


def test_rg_flow_rejects_a_file_that_is_not_percolation(run_dir: Path, tmp_path: Path) -> None:
    data = load_run(run_dir)[2]
    res = CliRunner().invoke(app, ["rg-flow", "-o", str(tmp_path), "--data", str(data)])
    assert res.exit_code == 2 and "percolation" in res.output
