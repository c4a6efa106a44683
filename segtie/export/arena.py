"""How much working memory a ``.tflite`` model needs: the peak of its live activations.

An interpreter (LiteRT, or LiteRT for Microcontrollers with its tensor arena) must
hold, while an op runs, every intermediate tensor that has been produced and is
still to be read: the op's inputs and outputs, and everything waiting for a later
op, such as a U-Net's skip connections. :func:`activation_peak` walks the main
subgraph's ops in their execution order (the flatbuffer's order) and sums, at each
op, the bytes of the non-constant tensors alive then (from the op that writes them,
or the start for graph inputs, to the last op that reads them, or the end for graph
outputs). Its maximum is a lower bound on any arena that runs the model in this op
order without computing in place; a real arena adds what its planner cannot pack
(fragmentation), alignment, the kernels' scratch buffers and the runtime's own
bookkeeping, so it is an estimate from below. Constants (weights) live in flash, not
in the arena.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from ai_edge_litert import schema_py_generated as schema

__all__ = ["ActivationPeak", "activation_peak"]

_TYPE_BYTES = {"FLOAT32": 4, "FLOAT16": 2, "INT8": 1, "UINT8": 1, "INT16": 2, "INT32": 4,
               "INT64": 8, "BOOL": 1, "FLOAT64": 8}
_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}


@dataclasses.dataclass(frozen=True)
class ActivationPeak:
    """What :func:`activation_peak` found.

    Attributes:
        peak_bytes: int, the most bytes of live intermediate tensors at any op.
        peak_op: int, the index (execution order) of the op where the peak occurs.
        largest_tensor_bytes: int, the largest single intermediate tensor.
        num_ops: int, ops in the main subgraph.
    """

    peak_bytes: int
    peak_op: int
    largest_tensor_bytes: int
    num_ops: int


def _tensor_bytes(tensor) -> int:
    name = _TYPE_NAMES.get(tensor.type, "?")
    if name not in _TYPE_BYTES:
        raise ValueError(f"Tensor {tensor.name!r} has type {name}, whose size is unknown "
                         f"(expected one of {sorted(_TYPE_BYTES)})")
    shape = [int(d) for d in (tensor.shape if tensor.shape is not None else [])]
    if any(d < 0 for d in shape):
        raise ValueError(f"Tensor {tensor.name!r} has a dynamic shape {shape}; the peak "
                         f"needs static shapes (export at a fixed input size)")
    return int(np.prod(shape, dtype=np.int64)) * _TYPE_BYTES[name]


def activation_peak(tflite: bytes) -> ActivationPeak:
    """The peak bytes of live non-constant tensors over the main subgraph's ops.

    Args:
        tflite: the bytes of a ``.tflite`` file with static shapes.

    Returns:
        :class:`ActivationPeak`.

    Raises:
        ValueError: not a LiteRT flatbuffer, or a tensor of dynamic shape or of a type
            of unknown size.
    """
    if len(tflite) < 8 or tflite[4:8] != b"TFL3":
        raise ValueError(f"Not a LiteRT flatbuffer: expected the identifier b'TFL3' at "
                         f"bytes 4..8, received {bytes(tflite[4:8])!r}")
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    graph = model.subgraphs[0]

    def constant(index: int) -> bool:
        buffer = model.buffers[graph.tensors[index].buffer]
        return buffer is not None and buffer.data is not None and len(buffer.data) > 0

    ops = graph.operators
    end = len(ops)
    first, last = {}, {}
    for index in graph.inputs:
        first[index] = 0
    for step, op in enumerate(ops):
        for index in op.outputs:
            first.setdefault(index, step)
        for index in op.inputs:
            if index >= 0:
                last[index] = step
    for index in graph.outputs:
        last[index] = end
    sizes = {i: _tensor_bytes(graph.tensors[i]) for i in first if not constant(i)}
    peak, peak_op = 0, 0
    for step in range(end):
        live = sum(size for i, size in sizes.items()
                   if first[i] <= step <= last.get(i, first[i]))
        if live > peak:
            peak, peak_op = live, step
    return ActivationPeak(peak_bytes=peak, peak_op=peak_op,
                          largest_tensor_bytes=max(sizes.values(), default=0), num_ops=end)
