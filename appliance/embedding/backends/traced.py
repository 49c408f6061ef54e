"""A sentence-transformers model traced once into a TorchScript graph, for CPU queries.

Eager torch hands the GIL back and takes it again around each of the few hundred operations of
a forward pass. Beside a busy Python thread (a server's event loop) a lone query then waits for
the GIL at every step: 7 ms alone became 770 ms beside one such thread, in-process. A traced
graph runs the whole pass in C++ without the GIL (45 ms beside the same thread, and that is the
tokenizer and the Python around the call).

In the graph every `aten::linear` becomes oneDNN's `_linear_pointwise` over weights packed once
(what `prepacked.py` does for the eager model, and torch's own compiler for CPU inference): the
packed weights live as the graph's module attributes, so nothing repacks them per call. A lone
query: 7.5 ms eager with packed layers, 5.0 ms traced with them.

Tracing records one path through the model's Python. The example has padding, so the attention
mask is applied; the backend checks the graph against the model on other shapes before it uses
it, and keeps the eager model where tracing fails or disagrees.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any, cast

import torch

from appliance.embedding.backends.prepacked import can_prepack

log = logging.getLogger(__name__)

_LINEAR = """
graph(%x, %w, %b):
  %r = aten::linear(%x, %w, %b)
  return (%r)"""

_PACKED_LINEAR = """
graph(%x, %w, %b):
  %attr : str = prim::Constant[value="none"]()
  %scalars : Scalar?[] = prim::ListConstruct()
  %algorithm : str = prim::Constant[value=""]()
  %r = mkldnn::_linear_pointwise(%x, %w, %b, %attr, %scalars, %algorithm)
  return (%r)"""


class _SentenceEmbedding(torch.nn.Module):
    """The model's pipeline as a function of tensors (tracing takes no dicts in)."""

    def __init__(self, model: torch.nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        features = dict(zip(self.names, tensors, strict=True))
        embedding: torch.Tensor = self.model(features)["sentence_embedding"]
        return embedding


class TracedModel:
    """Calls the graph with the tokenizer's features; returns the sentence embeddings."""

    def __init__(self, graph: torch.jit.ScriptModule, names: tuple[str, ...], *, packed: int):
        self.graph = graph
        self.names = names
        self.packed_linear_layers = packed

    def __call__(self, features: Mapping[str, object]) -> torch.Tensor:
        embedding: torch.Tensor = self.graph(*(features[name] for name in self.names))
        return embedding


def _pack_linear_layers(graph: torch.jit.ScriptModule) -> int:
    """Rewrites the graph's linear calls to oneDNN's and packs the weights they read; the
    number of layers packed."""
    torch._C._jit_pass_inline(graph.graph)
    torch._C._jit_pass_custom_pattern_based_rewrite_graph(_LINEAR, _PACKED_LINEAR, graph.graph)
    if any(node.kind() == "aten::linear" for node in graph.graph.nodes()):
        raise RuntimeError("a linear call the rewrite did not match")
    packed = 0
    for module in graph.modules():
        if getattr(module, "original_name", "") == "Linear":
            weight = cast(torch.Tensor, module.weight).detach()
            script_object = cast(Any, module)._c  # the C++ module: its slot, not a new Parameter
            script_object.setattr("weight", torch.ops.mkldnn._reorder_linear_weight(weight))
            packed += 1
    return packed


def traced_model(model: torch.nn.Module, example: Mapping[str, object]) -> TracedModel | None:
    """`model` (a CPU SentenceTransformer in eval mode) traced on `example`, the tokenizer's
    features for texts of different lengths; None where it cannot be traced. The model itself
    is left as it was: the graph holds its own packed weights and shares the rest."""
    names = tuple(sorted(name for name, value in example.items() if torch.is_tensor(value)))
    inputs = tuple(example[name] for name in names)
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on shape-dependent Python
            graph = torch.jit.trace(
                _SentenceEmbedding(model, names).eval(), inputs, check_trace=False
            )
            packed = _pack_linear_layers(graph) if can_prepack() else 0
    except (RuntimeError, TypeError, ValueError) as exc:  # a model the tracer cannot follow
        log.info("model not traced (%s): embedding with the eager model", exc)
        return None
    return TracedModel(graph, names, packed=packed)
