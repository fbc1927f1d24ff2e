"""The linear baseline beside the GON classifier (paper Eq. 13): scikit-learn's logistic regression on raw pixels
(scaled to [0, 1]) of the same train/test split a run uses.

    python benchmarks/logreg_baseline.py --dataset mnist --data-dir ../shared/data/mnist
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from signals.datasets import load_images, load_labels  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--max-iter", type=int, default=1000)
    ap.add_argument("--C", type=float, default=1.0, help="inverse L2 regularisation strength")
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression

    split = {}
    for s in ("train", "test"):
        x = load_images(args.dataset, s, args.data_dir, progress=False)
        split[s] = (x.reshape(len(x), -1) / 255.0, load_labels(args.dataset, s, args.data_dir)[0])
    t0 = time.perf_counter()
    clf = LogisticRegression(max_iter=args.max_iter, C=args.C).fit(*split["train"])
    acc = float((clf.predict(split["test"][0]) == split["test"][1]).mean())
    print(json.dumps({"dataset": args.dataset, "n_train": len(split["train"][1]), "n_test": len(split["test"][1]),
                      "accuracy": acc, "fit_s": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
