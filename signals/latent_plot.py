"""Held-out latents of an image run: a scatter coloured by class (the 2-D latents themselves, as the paper's
Figure 12, or their first two principal components), or an .npz of the latents and labels."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from implicit_gon.errors import DataError, GONError, UsageError
from implicit_gon.fsio import atomic_path


def labels_for(gon, split: str, data_dir) -> tuple[np.ndarray | None, list[str] | None]:
    """The split's class labels and names, or (None, None) for a dataset without labels."""
    from .datasets import load_labels

    d = gon.cfg.data
    try:
        return load_labels(d.dataset, split, data_dir or d.data_dir, d.cache_dir, d.camera)
    except DataError as e:
        if "no class labels" in str(e):
            return None, None
        raise


def project_2d(z: torch.Tensor) -> tuple[np.ndarray, list[str]]:
    """(n, K) -> (n, 2): the latents themselves when K <= 2, else their first two principal components."""
    z = z.double()
    if z.shape[1] <= 2:
        xy = torch.cat([z, z.new_zeros(len(z), 2 - z.shape[1])], 1)
        return xy.numpy(), ["z1", "z2"]
    zc = z - z.mean(0)
    _, s, vt = torch.linalg.svd(zc, full_matrices=False)
    share = (s.square() / s.square().sum()).tolist()
    return (zc @ vt[:2].T).numpy(), [f"PC{i + 1} ({100 * share[i]:.0f}% of variance)" for i in range(2)]


def write(z: torch.Tensor, labels, classes, out: Path, title: str) -> None:
    """out .npz: latents (n, K), labels (n,) and classes; otherwise a PNG/PDF/SVG scatter."""
    if out.suffix.lower() == ".npz":
        arrays = {"latents": z.numpy()}
        if labels is not None:
            arrays.update(labels=labels, classes=np.array(classes))
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        return
    if out.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise GONError(f"{out}: write latents as .png, .pdf, .svg (a scatter) or .npz (the arrays)")
    if len(z) < 2:
        raise UsageError(f"{out}: a scatter of latents needs at least 2 of them (got {len(z)}); write .npz for one")
    scatter(z, labels, classes, out, title)


def scatter(z: torch.Tensor, labels, classes, out: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xy, axes = project_2d(z)
    fig, ax = plt.subplots(figsize=(5.2, 4.4), dpi=110)
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=4, alpha=0.6, color="0.3", linewidths=0)
    else:
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        for k, name in enumerate(classes):
            sel = labels == k
            if sel.any():
                ax.scatter(xy[sel, 0], xy[sel, 1], s=4, alpha=0.7, color=cmap(k % cmap.N), linewidths=0, label=name)
        ax.legend(markerscale=3, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
