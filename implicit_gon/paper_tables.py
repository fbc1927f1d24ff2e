"""The paper's own figures, for `compare` to print beside ours.

Bond-Taylor & Willcocks, Gradient Origin Networks, ICLR 2021 (arXiv 2007.02798): Table 1 (held-out summed squared
error after 500 epochs, mean and standard deviation over three runs) and Table 2 (held-out negative ELBO in
bits/dim after 1,000 epochs; CelebA 150). Typed from the paper's tables (the values of the project's shared
paper/tables.json; tests/test_paper.py checks the two agree where that file is present).

Units: the authors' conv script (cwkx/GON, GON.py) trains on `((g - x) ** 2).sum(1).mean()`, summed over channels
and averaged over batch and pixels, while our `sse` is summed over every value of an image; the paper does not say
which its Table 1 reports, so read the ratio ours/paper as a scale check, and the ordering as the finding.
"""
from __future__ import annotations

from typing import Any

SOURCE = ("Bond-Taylor & Willcocks, Gradient Origin Networks, ICLR 2021 (arXiv 2007.02798): Table 1, held-out "
          "summed squared error after 500 epochs (mean ± std over 3 runs); Table 2, held-out bits/dim after 1,000 "
          "epochs (CelebA 150)")

TABLE1_DATASETS = ("mnist", "fashion-mnist", "smallnorb", "coil20", "cifar10")
TABLE1: dict[str, tuple[tuple[float, float], ...]] = {
    # method: (mean, std) per TABLE1_DATASETS
    "gon": ((0.41, 0.01), (1.00, 0.01), (0.17, 0.01), (5.35, 0.01), (9.12, 0.03)),
    "ae": ((1.33, 0.02), (1.75, 0.02), (0.73, 0.01), (6.05, 0.11), (12.24, 0.05)),
    "tied-ae": ((2.16, 0.03), (2.45, 0.02), (0.93, 0.03), (6.68, 0.13), (14.12, 0.34)),
    "detach": ((8.17, 0.15), (7.76, 0.21), (1.84, 0.01), (15.72, 0.70), (30.17, 0.29)),
    "detach-10": ((8.13, 0.50), (7.22, 0.92), (1.78, 0.02), (15.48, 0.60), (28.68, 1.16)),
    "gon-10": ((0.42, 0.01), (1.01, 0.01), (0.17, 0.01), (5.36, 0.01), (9.19, 0.01)),
    "glo": ((0.70, 0.01), (1.78, 0.01), (0.61, 0.01), (3.27, 0.02), (9.12, 0.03)),
}
TABLE1_EPOCHS = 500

TABLE2_DATASETS = ("mnist", "fashion-mnist", "smallnorb", "coil20", "cifar10", "celeba")
TABLE2: dict[str, tuple[float, ...]] = {  # method: bits/dim per TABLE2_DATASETS (no spread given)
    "vgon": (1.06, 3.30, 2.34, 3.44, 5.85, 5.41),
    "vae": (1.15, 3.23, 2.54, 3.63, 5.94, 5.59),
}
TABLE2_EPOCHS = 1000  # CelebA: 150


def figure(dataset: str, method: str, variational: bool) -> dict[str, Any] | None:
    """The paper's figure for (dataset, method) in Table 1 (or 2 with variational): mean, std (None in Table 2)
    and epochs; None where the paper has no such cell."""
    if variational:
        if method not in TABLE2 or dataset not in TABLE2_DATASETS:
            return None
        return {"mean": TABLE2[method][TABLE2_DATASETS.index(dataset)], "std": None,
                "epochs": 150 if dataset == "celeba" else TABLE2_EPOCHS}
    if method not in TABLE1 or dataset not in TABLE1_DATASETS:
        return None
    mean, std = TABLE1[method][TABLE1_DATASETS.index(dataset)]
    return {"mean": mean, "std": std, "epochs": TABLE1_EPOCHS}


def distinct(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether the paper tells two of its figures apart: means further apart than the sum of their standard
    deviations (Table 1's gon 0.41 ± 0.01 and gon-10 0.42 ± 0.01 are a tie; Table 2 gives no spread, so any
    difference counts)."""
    return abs(a["mean"] - b["mean"]) > (a["std"] or 0.0) + (b["std"] or 0.0)


def ordering(ours: dict[str, float], paper: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Whether our means keep the paper's order (lower is better), pair by pair, over the methods that have both.

    ours: method -> our mean; paper: method -> figure(). Returns the paper's order and ours (best first), the pairs
    the paper tells apart on which we agree and disagree ([better, worse] as the paper has them), and holds: True
    when no such pair is reversed (None with fewer than two methods to order)."""
    both = [m for m in ours if m in paper]
    agree, disagree = [], []
    for i, a in enumerate(both):
        for b in both[i + 1:]:
            if not distinct(paper[a], paper[b]):
                continue
            better, worse = (a, b) if paper[a]["mean"] < paper[b]["mean"] else (b, a)
            (agree if ours[better] < ours[worse] else disagree).append([better, worse])
    return {"paper": sorted(both, key=lambda m: paper[m]["mean"]), "ours": sorted(both, key=lambda m: ours[m]),
            "agree": agree, "disagree": disagree, "holds": None if not agree + disagree else not disagree}
