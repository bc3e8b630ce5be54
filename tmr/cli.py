"""The ``tmr`` command line: thin typer commands that parse, call the library and print."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="TMR: toy models of renormalisation (generate, train, probe, bound).")
console = Console()
err = Console(stderr=True)

SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override a config key: a.b=v")]


def fail(message: str) -> None:
    """Print one clear error line and exit with status 2."""
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=False)


@app.command()
def generate(
    config: Annotated[Path, typer.Argument(help="TOML data config (see configs/)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="HDF5 file to write")],
    seed: Annotated[int | None, typer.Option(help="override the config's seed")] = None,
    n_samples: Annotated[int | None, typer.Option(help="override n_samples")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing file")] = False,
    set_: SetOpt = None,
) -> None:
    """Generate a dataset with every latent level and write it to an HDF5 file."""
    from tmr import io
    from tmr.config import ConfigError, load_data_config

    overrides = list(set_ or [])
    if seed is not None:
        overrides.append(f"seed={seed}")
    if n_samples is not None:
        overrides.append(f"n_samples={n_samples}")
    try:
        cfg = load_data_config(config, overrides)
    except ConfigError as e:
        fail(str(e))
    if out.exists() and not overwrite:
        fail(f"{out} exists; pass --overwrite to replace it")
    try:
        with progress_bar() as bar:
            task = bar.add_task(f"generate {cfg.generator_name}", total=cfg.n_samples)
            io.write_dataset(out, cfg, progress=lambda done, _: bar.update(task, completed=done))
    except (ValueError, TypeError) as e:
        fail(str(e))
    _summary(out)


def _summary(path: Path) -> None:
    from tmr import io

    info = io.describe(path)
    attrs = info["attrs"]
    table = Table(title=f"{path} ({attrs['generator']}, seed {attrs['seed']}, "
                        f"{attrs['n_samples']} samples)")
    for col in ("array", "shape", "dtype"):
        table.add_column(col)
    for name, (shape, dtype) in info["arrays"].items():
        if not name.startswith("world/"):
            table.add_row(name, str(tuple(shape)), dtype)
    console.print(table)


@app.command()
def inspect(path: Annotated[Path, typer.Argument(help="a TMR HDF5 data file")]) -> None:
    """Print a data file's attributes, levels and array shapes."""
    from tmr import io

    try:
        info = io.describe(path)
    except io.DataFileError as e:
        fail(str(e))
    attrs = Table(title="attributes", show_header=False)
    for k, v in info["attrs"].items():
        attrs.add_row(k, str(v))
    console.print(attrs)
    arrays = Table(title="arrays")
    for col in ("array", "shape", "dtype"):
        arrays.add_column(col)
    for name, (shape, dtype) in info["arrays"].items():
        arrays.add_row(name, str(tuple(shape)), dtype)
    console.print(arrays)


@app.command("train-and-probe")
def train_and_probe(
    config: Annotated[Path, typer.Argument(help="TOML training config (see configs/train_*)")],
    data: Annotated[Path, typer.Option("--data", "-d", help="HDF5 data file")],
    out: Annotated[Path, typer.Option("--out", "-o", help="run directory")],
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N")] = None,
    seed: Annotated[int | None, typer.Option(help="override the config's seed")] = None,
    threads: Annotated[int | None, typer.Option(
        help="torch CPU threads (1 is fastest for small models on a busy machine)")] = None,
    set_: SetOpt = None,
) -> None:
    """Train a model on a data file, probe every site against every level, plot."""
    from tmr.config import ConfigError
    from tmr.io import DataFileError
    from tmr.train import load_train_config, run

    overrides = [*list(set_ or []), f"data_path={str(data)!r}"]
    if device is not None:
        overrides.append(f"device={device!r}")
    if seed is not None:
        overrides.append(f"seed={seed}")
    try:
        cfg = load_train_config(config, overrides)
    except ConfigError as e:
        fail(str(e))
    if threads is not None:
        import torch

        torch.set_num_threads(max(threads, 1))
    tasks: dict[str, object] = {}
    try:
        with progress_bar() as bar:
            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)  # type: ignore[arg-type]

            png = run(cfg, out, progress=progress)
    except (ConfigError, DataFileError, ValueError, TypeError) as e:
        fail(str(e))
    except KeyboardInterrupt:
        err.print(f"interrupted: rerun the same command to resume from {out}/checkpoints")
        raise typer.Exit(130) from None
    _best_sites(out / "probe_scores.csv")
    console.print(f"heatmap: {png}")


def _best_sites(csv_path: Path) -> None:
    from tmr.plots import layer_level_table, read_scores

    rows = read_scores(csv_path)
    metric = "selectivity" if any(r["metric"] == "selectivity" for r in rows) else "accuracy"
    table = Table(title=f"best site per level ({metric}, test split)")
    for col in ("level", "best site", metric, "accuracy"):
        table.add_column(col)
    ceiling_csv = csv_path.with_name("posterior_ceiling.csv")
    ceiling = {str(r["level"]): float(r["value"]) for r in
               (read_scores(ceiling_csv) if ceiling_csv.is_file() else [])
               if r["metric"] == "accuracy" and r["position"] == "mean"}
    if ceiling:  # PCFG soft levels: the Bayes-optimal (MAP) labeller's accuracy
        table.add_column("MAP ceiling")
    sites, levels, sel, _ = layer_level_table(rows, metric=metric)
    _, _, acc, _ = layer_level_table(rows, metric="accuracy")
    for j, level in enumerate(levels):
        scores = [float(v) if v == v else float("-inf") for v in sel[:, j]]
        if max(scores) == float("-inf"):
            continue
        i = scores.index(max(scores))
        extra = [f"{ceiling[level]:.3f}" if level in ceiling else ""] if ceiling else []
        table.add_row(level, sites[i], f"{sel[i, j]:.3f}", f"{acc[i, j]:.3f}", *extra)
    console.print(table)


@app.command()
def plot(
    run_dir: Annotated[Path, typer.Argument(help="a run directory with probe_scores.csv")],
    metric: Annotated[str, typer.Option(help="selectivity, accuracy or control_accuracy")]
        = "selectivity",
    split: Annotated[str, typer.Option(help="test or group")] = "test",
    step: Annotated[int | None, typer.Option(help="probed step (default: last)")] = None,
    out: Annotated[Path | None, typer.Option(help="PNG path (default RUN_DIR/layer_level.png)")]
        = None,
) -> None:
    """Draw the sites x levels heatmap from a run's probe_scores.csv."""
    from tmr.plots import layer_level_heatmap

    csv_path = run_dir / "probe_scores.csv"
    if not csv_path.is_file():
        fail(f"{csv_path} does not exist; run `tmr train-and-probe` first")
    try:
        png = layer_level_heatmap(csv_path, out or run_dir / "layer_level.png", metric=metric,
                                  split=split, step=step)
    except ValueError as e:
        fail(str(e))
    console.print(f"heatmap: {png}")


@app.command()
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="TOML sweep file (see configs/sweep_*.toml)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="sweep directory")],
    executor: Annotated[str, typer.Option(help="local, slurm or auto (slurm if sbatch exists)")
                        ] = "auto",
    max_parallel: Annotated[int, typer.Option(help="runs at a time (slurm_array_parallelism)")
                            ] = 2,
    timeout_min: Annotated[int, typer.Option(help="time limit of one run in minutes")] = 60,
) -> None:
    """Run a grid of experiments through submitit; re-running skips finished runs."""
    from tmr.config import ConfigError
    from tmr.sweep import run_sweep

    try:
        with progress_bar() as bar:
            task = bar.add_task("sweep", total=None)
            dirs = run_sweep(sweep_file, out, executor=executor, max_parallel=max_parallel,
                             timeout_min=timeout_min,
                             progress=lambda d, t: bar.update(task, completed=d, total=t))
    except (ConfigError, ValueError) as e:
        fail(str(e))
    console.print(f"{len(dirs)} runs in {out / 'runs'}; merge them with `tmr collect {out}`")


@app.command()
def collect(sweep_dir: Annotated[Path, typer.Argument(help="a `tmr sweep` output directory")]
            ) -> None:
    """Merge every run's scores into collected.csv and draw collected.png."""
    from tmr.config import ConfigError
    from tmr.sweep import collect as collect_runs

    try:
        csv_path, png = collect_runs(sweep_dir)
    except ConfigError as e:
        fail(str(e))
    console.print(f"table: {csv_path}\nfigure: {png}")


@app.command("coarse-grain")
def coarse_grain(
    run_dir: Annotated[Path, typer.Argument(help="a training run directory")],
    site: Annotated[str, typer.Option(help="hook site, e.g. layers.3.post")],
    scheme: Annotated[str, typer.Option(help="pca | ntk | ck | fisher")] = "pca",
    budget: Annotated[float, typer.Option(help="discarded spectral fraction allowed")] = 0.05,
    n_samples: Annotated[int, typer.Option(help="samples of the split to use")] = 512,
    split: Annotated[str, typer.Option(help="data split")] = "test",
    out: Annotated[Path | None, typer.Option(help="output dir (default RUN_DIR/coarse_grain/...)")]
    = None,
    ks: Annotated[str | None, typer.Option(
        help="kept-mode counts of the faithfulness curve, e.g. 0,1,2,4,8,16 "
             "(default: powers of 2 and the budget cutoff)")] = None,
) -> None:
    """Spectral coarse-graining of a site: spectrum, kept modes, faithfulness per level."""
    try:
        from tmr.rg.report import coarse_grain_run

        k_list = None if ks is None else [int(k) for k in ks.split(",") if k.strip()]
        rep = coarse_grain_run(run_dir, site=site, scheme=scheme, budget=budget, out_dir=out,
                               n_samples=n_samples, split=split, ks=k_list)
    except ImportError as e:
        fail(f"coarse-grain needs the training run loader (tmr.train, tmr.hooks): {e}")
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))
    alpha = rep.summary["power_law_alpha"]
    alpha_s = "none" if alpha is None else f"{alpha:.3f}"
    table = Table(title=f"{site} {scheme}: k={rep.k} of {rep.summary['n_modes']} modes "
                        f"(budget {budget}), power-law α={alpha_s}")
    cols = list(rep.faithfulness[0])
    for c in cols:
        table.add_column(c.removeprefix("probe:"))
    for row in rep.faithfulness:
        table.add_row(*(f"{row[c]:.4g}" for c in cols))
    console.print(table)
    console.print(f"wrote {', '.join(str(p) for p in rep.paths)}")


@app.command("rg-flow")
def rg_flow(
    out: Annotated[Path, typer.Option("--out", "-o", help="directory for flow.csv")],
    rule: Annotated[str, typer.Option(help="majority | decimation | spanning | mean")]
    = "spanning",
    b: Annotated[int, typer.Option(help="block side")] = 2,
    side: Annotated[int, typer.Option(help="lattice side L")] = 64,
    dim: Annotated[int, typer.Option(help="lattice dimension (2 or 3)")] = 2,
    n_samples: Annotated[int, typer.Option(help="configurations per p")] = 100,
    steps: Annotated[int, typer.Option(help="RG steps")] = 3,
    p: Annotated[str, typer.Option(help="ladder p_min:p_max:count")] = "0.4:0.8:17",
    seed: Annotated[int, typer.Option(help="seed of the uniform fields")] = 0,
    data: Annotated[Path | None, typer.Option(
        help="a percolation data file (tmr generate configs/percolation_square.toml): "
             "flow its own configurations at its p ladder instead of uniform fields")] = None,
    split: Annotated[str | None, typer.Option(help="split of --data (default: all)")] = None,
) -> None:
    """Iterated block RG flow on site-percolation configurations (open = u < p, one
    uniform field per sample so the p ladder is nested, or the nested rungs of a
    percolation file with --data); fixed point p* and ν."""
    import csv
    import json

    import numpy as np

    from tmr.rg import block_flow_table

    try:
        if data is not None:
            from tmr.rg.percolation_flow import percolation_flow

            rows, summary = percolation_flow(data, rule, b, n_steps=steps,  # type: ignore[arg-type]
                                             split=split)
            ps = summary["ps"]
            world = summary["world"]
            side, dim = int(world["size"]), int(world["dim"])
        else:
            lo, hi, count = p.split(":")
            ps = list(np.linspace(float(lo), float(hi), int(count)))
            rows, summary = block_flow_table(rule, b, ps, side=side, n_samples=n_samples,  # type: ignore[arg-type]
                                             n_steps=steps, dim=dim, rng=seed)
    except FileNotFoundError as e:
        fail(str(e))
    except ValueError as e:
        fail(str(e) if data is not None else
             f"{e} (p ladder is p_min:p_max:count, e.g. 0.4:0.8:17)")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "flow.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "summary.json").write_text(json.dumps({"rule": rule, "b": b, "side": side,
                                                  "dim": dim, **summary}, indent=2))
    fmt = {k: "none" if summary[k] is None else f"{summary[k]:.4f}" for k in ("p_star", "nu")}
    table = Table(title=f"{rule} rule, b={b}, L={side}, d={dim}: p*={fmt['p_star']}, "
                        f"ν={fmt['nu']}")
    for c in ("p", *[f"density@{b ** s}" for s in range(steps + 1)]):
        table.add_column(c)
    for pv in ps:
        dens = [r["density"] for r in rows if r["p"] == float(pv)]
        table.add_row(f"{pv:.3f}", *(f"{d:.3f}" for d in dens))
    console.print(table)
    console.print(f"wrote {out / 'flow.csv'}, {out / 'summary.json'}")


@app.command()
def bound(
    run_dir: Annotated[Path, typer.Argument(help="a train-and-probe run directory")],
    site: Annotated[str, typer.Option(help="hook site, e.g. layers.2.post")],
    scheme: Annotated[str, typer.Option(help="RG scheme giving the tail subspace")] = "pca",
    keep: Annotated[int, typer.Option(help="relevant modes kept; the rest is the tail")] = 8,
    eps: Annotated[str, typer.Option(
        help="comma-separated ℓ2 radii; 'natural' = median tail fluctuation "
             "‖V_tailᵀ(h − h̄)‖, 'natural*C' = C times it")] = "0.1,1,5",
    observable: Annotated[str, typer.Option(help="margin, loss or logit:C")] = "margin",
    n_inputs: Annotated[int, typer.Option(help="test inputs bounded")] = 200,
    out: Annotated[Path | None, typer.Option(help="output dir (default RUN_DIR/bounds)")] = None,
    threads: Annotated[int, typer.Option(help="torch CPU threads")] = 1,
) -> None:
    """Certified (CROWN/Lipschitz) and attack-found (PGD) worst-case change of an observable
    under perturbations in a site's tail subspace, beside the relevant subspace at equal ε."""
    import torch

    from tmr.bounds.run import bound_run, parse_eps, save

    torch.set_num_threads(max(threads, 1))
    try:
        radii = parse_eps(eps)
        rows, _ = bound_run(run_dir, site, scheme=scheme, keep=keep, eps=radii,
                            observable=observable, n_inputs=n_inputs)
    except (ValueError, TypeError, FileNotFoundError) as e:
        fail(str(e))
    csv_path, png = save(rows, out or run_dir / "bounds")
    r0 = rows[0]
    frac = r0["tail_variance_fraction"]
    table = Table(title=f"{site}: {scheme} tail (keep {keep}, variance fraction "
                        f"{frac:.3g}, natural scale {r0['tail_natural_scale']:.3g}), "
                        f"{observable}, {r0['n_inputs']} inputs, {r0['status']}")
    for c in ("ε", "certified", "empirical", "ratio", "relevant cert.", "separation index",
              "no flip (tail / relevant)"):
        table.add_column(c)
    for r in rows:
        table.add_row(f"{r['eps']:g}", f"{r['certified']:.4g}", f"{r['empirical']:.4g}",
                      f"{r['ratio']:.3g}", f"{r['relevant_certified']:.4g}",
                      f"{r['separation_index']:.3g}",
                      f"{r['no_flip_certified']:.2f} / {r['relevant_no_flip_certified']:.2f}")
    console.print(table)
    console.print(f"wrote {csv_path}, {png}")


@app.command("evaluate-tools")
def evaluate_tools(
    run_dir: Annotated[Path, typer.Argument(help="a train-and-probe run directory")],
    site: Annotated[str, typer.Option(help="hook site, e.g. layers.0.post")],
    tools: Annotated[str, typer.Option(
        help="comma-separated: sae-relu, sae-topk, matryoshka, pca, ntk")]
        = "sae-topk,matryoshka,pca",
    widths: Annotated[str, typer.Option(
        help="SAE dictionary widths: integers or multiples of the site width (2x)")] = "1x,4x",
    seeds: Annotated[int, typer.Option(help="SAE seeds per width (canonicity needs ≥ 2)")] = 2,
    k: Annotated[int, typer.Option(help="active features of TopK / Matryoshka SAEs")] = 16,
    epochs: Annotated[int, typer.Option(help="SAE epochs over the activations")] = 3,
    min_steps: Annotated[int, typer.Option(help="least SAE Adam steps")] = 250,
    n_train: Annotated[int, typer.Option(help="training-split activations for the SAEs")]
        = 100_000,
    n_eval: Annotated[int, typer.Option(help="probe-split samples scored")] = 4096,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N")] = "auto",
    threads: Annotated[int, typer.Option(help="torch CPU threads")] = 1,
    per_token: Annotated[bool, typer.Option(
        help="sequence sites: one row per token (levels per token)")] = False,
    n_bound: Annotated[int, typer.Option(
        help="planted data: inputs whose margin bound is certified (0: none)")] = 100,
) -> None:
    """Train SAEs on a site and score them, PCA and eNTK modes against the known latents:
    AUROC/F1 per latent, monosemantic fraction, level per feature, canonicity,
    faithfulness and reconstruction error (RUN/tools/<site>/tool_scores.csv + figures)."""
    import torch

    from tmr.tools import parse_tools, parse_widths
    from tmr.tools_run import evaluate_tools as run_tools

    torch.set_num_threads(max(threads, 1))
    try:
        tool_list = parse_tools(tools)
        if seeds <= 0 or k <= 0:
            raise ValueError(f"--seeds {seeds} --k {k}: both must be > 0")
        parse_widths(widths, 1 << 20)  # syntax and signs now; "Nx" resolved at the site
        tasks: dict[str, object] = {}
        with progress_bar() as bar:
            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)  # type: ignore[arg-type]

            rows, paths = run_tools(run_dir, site, tool_list, widths, list(range(seeds)),
                                    k=k, epochs=epochs, min_steps=min_steps, n_train=n_train,
                                    n_eval=n_eval, device=device, progress=progress,
                                    per_token=per_token, n_bound=n_bound)
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))
    from tmr.tools_report import summary_lines

    for line in summary_lines(rows):
        console.print(line, markup=False, highlight=False)
    console.print(f"wrote {', '.join(str(p) for p in paths)}")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="a run directory with layer_metrics.csv")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write here (default: "
                                             "the run directory)")] = None,
) -> None:
    """Write report.html (one self-contained page) and summary.md (paper-000 claims) for a run."""
    from tmr.report import claims_from_rows, write_report

    try:
        page, summary = write_report(run_dir, out)
    except (FileNotFoundError, ValueError) as e:
        fail(str(e))
    from tmr.metrics.table import read_table

    table = Table(title="paper 000 claims (last step)")
    for col in ("claim", "statement", "verdict", "reason"):
        table.add_column(col)
    for c in claims_from_rows(read_table(Path(run_dir) / "layer_metrics.csv")):
        table.add_row(f"({c['claim']})", str(c["statement"]), str(c["verdict"]),
                      str(c["reason"]))
    console.print(table)
    console.print(f"report: {page}\nsummary: {summary}")


def main() -> None:  # pragma: no cover
    app(sys.argv[1:])
