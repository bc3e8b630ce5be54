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
    table = Table(title="best site per level (selectivity, test split)")
    for col in ("level", "best site", "selectivity", "accuracy"):
        table.add_column(col)
    sites, levels, sel, _ = layer_level_table(rows, metric="selectivity")
    _, _, acc, _ = layer_level_table(rows, metric="accuracy")
    for j, level in enumerate(levels):
        scores = [float(v) if v == v else float("-inf") for v in sel[:, j]]
        if max(scores) == float("-inf"):
            continue
        i = scores.index(max(scores))
        table.add_row(level, sites[i], f"{sel[i, j]:.3f}", f"{acc[i, j]:.3f}")
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


def main() -> None:  # pragma: no cover
    app(sys.argv[1:])
