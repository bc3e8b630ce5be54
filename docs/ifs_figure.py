"""Draw docs/ifs_addresses.png: IFS images beside their level-1 and level-2 address maps.

    python docs/ifs_figure.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from generators import ifs


def main() -> None:
    worlds = {"Sierpinski": ifs.make_world(system="sierpinski"),
              "Barnsley fern": ifs.make_world(system="fern"),
              "random σ-factor, K=4": ifs.make_world(n_maps=4, rng=3, probabilities="uniform")}
    fig, axes = plt.subplots(len(worlds), 3, figsize=(9, 3 * len(worlds)))
    for row, (name, w) in zip(axes, worlds.items(), strict=True):
        s = ifs.sample(w, 1, rng=0, mode="images", image_size=128, n_points=100_000,
                       n_address_levels=2, soft_levels=0)
        row[0].imshow(np.log1p(s.x[0]), cmap="gray_r")
        row[0].set_title(f"{name}: image")
        for l in (1, 2):
            amap = s.levels[l - 1][0].astype(float)
            amap[amap < 0] = np.nan  # empty or ambiguous pixels stay white
            row[l].imshow(amap, cmap="tab10" if l == 1 else "tab20", interpolation="nearest")
            row[l].set_title(f"level {l} address ({w.n_maps ** l} values)")
        for ax in row:
            ax.set_axis_off()
    fig.tight_layout()
    out = Path(__file__).with_name("ifs_addresses.png")
    fig.savefig(out, dpi=80)
    print(out)


if __name__ == "__main__":
    main()
