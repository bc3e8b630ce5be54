"""The streaming IFS dataset renders the same images whatever the worker count."""

from __future__ import annotations

import numpy as np
from torch.utils.data import DataLoader

from generators import ifs
from tmr.ifs_stream import IFSImageStream

KW = dict(image_size=32, n_points=2000, n_address_levels=2, soft_levels=0)


def test_stream_equals_sample_for_any_worker_count():
    w = ifs.make_world(n_maps=3, n_systems=2, rng=0)
    ref = ifs.sample(w, 6, rng=7, mode="images", **KW)  # type: ignore[arg-type]
    for workers in (0, 2):
        loader = DataLoader(IFSImageStream(w, 7, 6, **KW), batch_size=None,
                            num_workers=workers)
        items = list(loader)
        assert len(items) == 6
        for i, (image, levels) in enumerate(items):
            np.testing.assert_array_equal(image[0].numpy(), ref.x[i].astype(np.float32))
            assert int(levels[0]) == ref.levels[0][i]
            np.testing.assert_array_equal(levels[2].numpy(), ref.levels[2][i])
