"""The optimiser of a run, shared by training and by --resume's check of a stored optimiser state."""
from __future__ import annotations

import torch


def make_optimizer(model, tc) -> torch.optim.Adam:
    """Adam; the variational head gets tc.lr * tc.head_lr_mult and a classifier (classify and joint tasks)
    tc.lr * tc.classifier_lr_mult, each a group of its own after F's."""
    fast = [(m, mult) for m, mult in ((model.head, tc.head_lr_mult),
                                      (getattr(model, "classifier", None), tc.classifier_lr_mult)) if m is not None]
    fast += [(m, m.lr_mult) for m in model.children() if hasattr(m, "lr_mult")]  # e.g. GLO's per-image latents
    if not fast:
        return torch.optim.Adam(model.parameters(), lr=tc.lr)
    own = {id(p) for m, _ in fast for p in m.parameters()}
    rest = [p for p in model.parameters() if id(p) not in own]
    return torch.optim.Adam([{"params": rest}] + [{"params": list(m.parameters()), "lr": tc.lr * mult}
                                                  for m, mult in fast], lr=tc.lr)
