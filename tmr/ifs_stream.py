"""Streaming IFS images: a torch IterableDataset that renders on the fly.

Image ``i`` is :func:`generators.ifs.render.render` ``(world, i, seed)``: it depends
only on the index and the seed, so the stream holds the same images whatever the
number of ``DataLoader`` workers (worker ``w`` of ``W`` renders indices
``w, w+W, …``; with ``batch_size=None`` the loader's round robin restores index
order) and equals ``tmr generate`` / ``ifs.sample`` with the same world and seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from generators import ifs
from generators.ifs import render as ifs_render


class IFSImageStream(IterableDataset):
    """Yields ``(image (C, H, W) float32, levels)`` for indices ``start..stop-1``
    (``C = 3`` with ``colour=True``, else 1); ``levels`` holds the instance id (a
    0-d int64 tensor) and the per-pixel address maps (H, W) int64, level 1 first
    (-1 where empty or ambiguous)."""

    def __init__(self, world: ifs.World, seed: int, stop: int, *, start: int = 0,
                 **render_kw: Any) -> None:
        if not 0 <= start <= stop:
            raise ValueError(f"need 0 <= start <= stop, got start={start}, stop={stop}")
        self.world, self.seed, self.start, self.stop = world, seed, start, stop
        self.render_kw = render_kw

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self) -> Iterator[tuple[torch.Tensor, tuple[torch.Tensor, ...]]]:
        info = get_worker_info()
        wid, n_workers = (0, 1) if info is None else (info.id, info.num_workers)
        for i in range(self.start + wid, self.stop, n_workers):
            q, r = ifs_render.render(self.world, i, self.seed, **self.render_kw)
            image = torch.from_numpy(r.image.astype("float32"))
            # (1, H, W) grey or (3, H, W) with colour=True: channels first
            image = image.permute(2, 0, 1) if image.ndim == 3 else image[None]
            maps = tuple(torch.from_numpy(m) for m in r.address_maps)
            yield image, (torch.tensor(q), *maps)
