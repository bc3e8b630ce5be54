"""Instance-batched training: several seeds of one small model trained at once.

Tiny models leave a GPU (or a CPU's vector units) mostly idle, so runs that differ
only in ``seed`` are stacked along a leading *instance* axis
(``torch.func.stack_module_state``) and evaluated with
``torch.func.vmap(functional_call)``. The loss is the sum of the instances' own
mean losses, so each instance receives exactly its own gradient, and AdamW/SGD act
element by element; every instance therefore follows the trajectory of its
separate run (same init, batches and masks from its own seed streams) up to the
rounding of batched matrix products. Each instance writes the files
:func:`tmr.train.train` writes (``config.json``, ``metrics.jsonl``, checkpoints,
``model.pt``); :func:`tmr.train.run` then finds ``model.pt`` and only probes and
plots. An interrupted group is retrained from the start (instances are not
resumed one by one).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from tmr.config import to_dict
from tmr.train.data_adapter import IGNORE
from tmr.train.loop import (
    Prepared,
    Progress,
    TrainConfig,
    _atomic_save,
    _atomic_text,
    _batch_rows,
    _build,
    _config_record,
    _weights,
    autocast,
    checkpoint_steps,
    evaluate,
    prepare,
    total_steps,
)


def _without_seed(cfg: TrainConfig) -> dict[str, Any]:
    d = to_dict(cfg)
    d.pop("seed")
    return d


def train_seeds(configs: Sequence[TrainConfig], out_dirs: Sequence[str | Path], *,
                progress: Progress | None = None) -> list[Path]:
    """Train ``configs`` (identical but for ``seed``) as one stacked model.

    Returns the output directories; a directory that already has ``model.pt`` is
    left alone (the group is trained without it). Raises ``ValueError`` when the
    configs differ in anything but the seed.
    """
    if len(configs) != len(out_dirs) or not configs:
        raise ValueError("train_seeds needs one output directory per config (at least one)")
    ref = _without_seed(configs[0])
    for c in configs[1:]:
        if _without_seed(c) != ref:
            raise ValueError("instance-batched runs must differ only in seed; got configs "
                             "that differ elsewhere: run them separately")
    outs = [Path(d) for d in out_dirs]
    todo = [(c, o) for c, o in zip(configs, outs, strict=True) if not (o / "model.pt").is_file()]
    if not todo:
        return outs
    preps = [prepare(c, o) for c, o in todo]
    _train_stacked(preps, [o for _, o in todo], progress)
    return outs


def _train_stacked(preps: list[Prepared], outs: list[Path], progress: Progress | None) -> None:
    p0 = preps[0]
    cfg, device = p0.cfg.optim, p0.device
    models = [_build(p) for p in preps]
    params, buffers = stack_module_state(models)  # name -> (I, ...)
    base = copy.deepcopy(models[0]).to("meta")

    def forward(pr: dict[str, torch.Tensor], bu: dict[str, torch.Tensor],
                x: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (pr, bu), (x,))

    batched = vmap(forward, in_dims=(0, 0, 0))
    leaves = list(params.values())
    opt: torch.optim.Optimizer
    if cfg.name == "sgd":
        opt = torch.optim.SGD(leaves, lr=cfg.lr, momentum=cfg.momentum,
                              weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.AdamW(leaves, lr=cfg.lr, weight_decay=cfg.weight_decay)
    x_tr = [p.data.x_train.to(device) for p in preps]
    n = len(x_tr[0])
    if any(len(x) != n for x in x_tr):
        raise ValueError("instance-batched runs need training sets of one size")
    total = total_steps(cfg, n)
    saves = set(checkpoint_steps(cfg, total))
    for p, out in zip(preps, outs, strict=True):
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        _atomic_text(json.dumps(_config_record(p), indent=2, sort_keys=True), out / "config.json")
        (out / "metrics.jsonl").write_text("")
    running = [[0.0, 0, 0] for _ in preps]  # loss sum, correct, count

    def sync() -> None:
        """Copy the stacked parameters into the per-instance models."""
        with torch.no_grad():
            for i, m in enumerate(models):
                for name, t in m.named_parameters():
                    t.copy_(params[name][i])

    def log_eval(step: int) -> None:
        sync()
        for i, (p, m, out) in enumerate(zip(preps, models, outs, strict=True)):
            test_loss, test_acc = evaluate(m, p.data.x_test.to(device),
                                           p.data.y_test.to(device))
            lsum, correct, count = running[i]
            entry = {"step": step,
                     "train_loss": lsum / count if count else None,
                     "train_acc": correct / count if count else None,
                     "test_loss": test_loss, "test_acc": test_acc}
            with (out / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(entry) + "\n")
            running[i] = [0.0, 0, 0]

    def save(step: int, final: bool = False) -> None:
        sync()
        for p, m, out in zip(preps, models, outs, strict=True):
            path = out / "model.pt" if final else out / "checkpoints" / f"step_{step:07d}.pt"
            _atomic_save(_weights(m, p, step), path)

    log_eval(0)
    if 0 in saves:
        save(0)
    for step in range(total):
        xs, ys = [], []
        for p, x in zip(preps, x_tr, strict=True):
            rows = _batch_rows(p.seeds["train"], step, n, cfg.batch_size).to(device)
            xb, yb = p.data.batch(x, rows, train=True, step=step, seed=p.seeds["train"])
            xs.append(xb)
            ys.append(yb)
        with autocast(cfg.amp, device):
            logits = batched(params, buffers, torch.stack(xs))  # (I, B, C) or (I, B, P, C)
        loss = logits.new_zeros(())
        for i, (lg, y) in enumerate(zip(logits, ys, strict=True)):
            lg, y = lg.reshape(-1, lg.shape[-1]), y.reshape(-1)
            li = nn.functional.cross_entropy(lg, y, ignore_index=IGNORE)
            loss = loss + li
            keep = y != IGNORE
            k = int(keep.sum())
            running[i][0] += float(li.detach()) * k
            running[i][1] += int((lg.argmax(1)[keep] == y[keep]).sum())
            running[i][2] += k
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done = step + 1
        if done % cfg.eval_every == 0 or done == total:
            log_eval(done)
        if done in saves:
            save(done)
        if progress is not None:
            progress("train", done, total)
    save(total, final=True)


def seed_groups(configs: Sequence[TrainConfig]) -> list[list[int]]:
    """Indices of ``configs`` grouped by everything but the seed (stackable groups)."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(configs):
        groups.setdefault(json.dumps(_without_seed(c), sort_keys=True), []).append(i)
    return list(groups.values())


__all__ = ["seed_groups", "train_seeds"]
