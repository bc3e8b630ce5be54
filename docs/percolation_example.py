"""Draw the percolation page figure: one square-lattice sample and its nested cluster levels.

    PYTHONPATH=. python docs/percolation_example.py  # writes docs/percolation_levels.png
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from generators import percolation as P


def main() -> None:
    world = P.make_world(lattice="square", size=128, n_levels=6, boundary="free")
    s = P.sample(world, 1, rng=3, x_level=2)
    shown = [0, 1, 2, 3, 5]  # coarsest (highest p) first
    fig, axes = plt.subplots(1, len(shown) + 1, figsize=(3 * (len(shown) + 1), 3.7))
    axes[0].imshow(s.x[0], cmap="gray_r", interpolation="nearest")
    axes[0].set_title(f"x: occupation at p={world.level_ps[2]:.3f}")
    colours = np.random.default_rng(0).random((int(s.levels[-1].max() + s.levels[0].max()) + 2, 3))
    for ax, j in zip(axes[1:], shown, strict=True):
        lab = s.levels[j][0]
        img = colours[lab % len(colours)]
        img[lab == 0] = 1.0
        img[s.aux["in_largest"][0, j]] = (0.8, 0.1, 0.1)  # largest cluster in red
        ax.imshow(img, interpolation="nearest")
        spans = bool(s.aux["spans"][0, j].any())
        ax.set_title(f"level {j}: p={world.level_ps[j]:.3f}\n"
                     f"{s.aux['n_clusters'][0, j]} clusters, spans={spans}")
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    out = Path(__file__).with_name("percolation_levels.png")
    fig.savefig(out, dpi=80)
    print(out)


if __name__ == "__main__":
    main()
