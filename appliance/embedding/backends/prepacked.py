"""Linear layers whose weights are packed once, for oneDNN, instead of on every call.

A lone query is a matrix of a dozen rows; for each of a MiniLM's 37 linear layers, MKL's sgemm
spends as long copying the weight into its blocked layout as multiplying (28 % and 27 % of the
embedding thread's time in a server profile). oneDNN takes the weight packed ahead
(`torch.ops.mkldnn._reorder_linear_weight`, what torch's own compiler uses for CPU
inference): the same products summed in another order, so the vectors differ by ~1e-7.
Torch builds without oneDNN keep the plain layers. The torch backend embeds through a traced
graph with the same packing (traced.py) and falls back to this copy where a model cannot be
traced. The cost is a second copy of the linear
weights in memory (42 MB for MiniLM-L6): the loaded model stays as it was, for the benchmarks'
raw baselines and the check at load.
"""

from __future__ import annotations

import copy
import logging
from itertools import chain
from typing import TypeVar

import torch

log = logging.getLogger(__name__)

M = TypeVar("M", bound=torch.nn.Module)


class PrepackedLinear(torch.nn.Module):
    """`torch.nn.Linear`'s forward (no activation) with the weight in oneDNN's layout."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        weight = linear.weight.detach()
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight)
        self.bias = None if linear.bias is None else linear.bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")


def can_prepack() -> bool:
    return bool(torch.backends.mkldnn.is_available()) and hasattr(
        torch.ops.mkldnn, "_linear_pointwise"
    )


def prepacked_copy(model: M) -> M | None:
    """A copy of a CPU `model` in inference mode whose linear layers hold packed weights; every
    other parameter and buffer is shared with `model`, which is left as it was. None where this
    torch has no oneDNN or packing fails."""
    if not can_prepack():
        return None
    shared = {id(tensor): tensor for tensor in chain(model.parameters(), model.buffers())}
    try:
        packed = copy.deepcopy(model, memo=shared)
        with torch.inference_mode():
            for parent in list(packed.modules()):
                for name, child in list(parent.named_children()):
                    if type(child) is torch.nn.Linear:
                        setattr(parent, name, PrepackedLinear(child))
    except (RuntimeError, NotImplementedError) as exc:  # an op this build lacks
        log.info("linear weights not prepacked (%s): embedding with torch's own layers", exc)
        return None
    return packed.eval()
