"""Read the weights of a ``.tflite`` flatbuffer: what is stored, and who reads it.

:func:`read_weights` parses the file with the LiteRT schema
(``ai_edge_litert.schema_py_generated``, the flatbuffers object API) and reports the
bytes of its constant buffers and, for every convolution (``CONV_2D``,
``TRANSPOSE_CONV``), the buffer that holds its filter. (A segtie model has no
depthwise convolution of its own; the 1x1 depthwise ops that
:mod:`segtie.export.graph_forms` writes are per-use batch-norm scales, counted in
``op_counts`` only.) A
tied kernel stored once is one filter buffer read by several convolutions; a copy
per use would be several buffers. A float16 model stores its filters as float16
constants followed by a ``DEQUANTIZE`` op; the filter's buffer is then the buffer of
the ``DEQUANTIZE`` input.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
from ai_edge_litert import schema_py_generated as schema

__all__ = ["CONV_FILTER_INPUT", "FlatbufferWeights", "read_weights"]

CONV_FILTER_INPUT = {"CONV_2D": 1, "TRANSPOSE_CONV": 1}
"""Which input of each convolution op is its filter (TRANSPOSE_CONV: output_shape,
weights, input, bias)."""
_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}


@dataclasses.dataclass
class FlatbufferWeights:
    """What :func:`read_weights` found in one ``.tflite`` file.

    Attributes:
        file_bytes: int, size of the whole file.
        constant_bytes: int, bytes of the distinct non-empty buffers read by any
            tensor (weights, biases, folded constants such as a normalization's
            scale, shape vectors).
        op_counts: ``{op name: count}`` over the main subgraph.
        filter_uses: ``{buffer index: number of convolutions reading it}``.
        filters: ``{buffer index: (shape tuple, dtype name, values ndarray)}`` of
            the filter buffers, values decoded with the tensor's type.
        num_convolutions: int, convolution ops in the main subgraph.
    """

    file_bytes: int
    constant_bytes: int
    op_counts: dict
    filter_uses: dict
    filters: dict
    num_convolutions: int

    @property
    def num_filter_buffers(self) -> int:
        """Distinct stored convolution filters."""
        return len(self.filter_uses)


def _buffer_bytes(buffer) -> int:
    """Bytes of a buffer, inline (``data``) or beyond 2 GB (``offset``/``size``)."""
    if buffer is None:
        return 0
    if buffer.data is not None and len(buffer.data):
        return len(buffer.data)
    return int(getattr(buffer, "size", 0) or 0)


def _decode(buffer, tensor) -> np.ndarray:
    dtype = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT8": np.int8,
             "UINT8": np.uint8, "INT32": np.int32}.get(_TYPE_NAMES[tensor.type])
    data = np.asarray(buffer.data, dtype=np.uint8)
    if dtype is None:
        return data
    return data.view(dtype).reshape([int(d) for d in tensor.shape])


def read_weights(tflite: bytes) -> FlatbufferWeights:
    """Parse a ``.tflite`` flatbuffer and report its constant buffers and filters.

    Args:
        tflite: the file's bytes.

    Returns:
        :class:`FlatbufferWeights`.

    Raises:
        ValueError: ``tflite`` is not a LiteRT flatbuffer (no ``TFL3`` identifier).
    """
    if len(tflite) < 8 or tflite[4:8] != b"TFL3":
        raise ValueError(f"Not a LiteRT flatbuffer: expected the identifier b'TFL3' at "
                         f"bytes 4..8, received {bytes(tflite[4:8])!r}")
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    used = {t.buffer for sg in model.subgraphs for t in sg.tensors}
    constant = sum(_buffer_bytes(model.buffers[i]) for i in used if 0 < i < len(model.buffers))
    graph = model.subgraphs[0]
    producer = {out: op for op in graph.operators for out in op.outputs}

    def op_name(op) -> str:
        code = model.operatorCodes[op.opcodeIndex]
        return _OP_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")

    def source(tensor_index: int) -> int:
        """The buffer behind a tensor, through a DEQUANTIZE of a float16 constant."""
        tensor = graph.tensors[tensor_index]
        if _buffer_bytes(model.buffers[tensor.buffer]):
            return tensor.buffer
        op = producer.get(tensor_index)
        if op is not None and op_name(op) == "DEQUANTIZE":
            return source(op.inputs[0])
        return -1

    ops = collections.Counter(op_name(op) for op in graph.operators)
    uses, filters, convolutions = collections.Counter(), {}, 0
    for op in graph.operators:
        name = op_name(op)
        if name not in CONV_FILTER_INPUT:
            continue
        convolutions += 1
        index = source(op.inputs[CONV_FILTER_INPUT[name]])
        uses[index] += 1
        if index >= 0 and index not in filters:
            tensor = next(t for t in graph.tensors if t.buffer == index)
            filters[index] = (tuple(int(d) for d in tensor.shape), _TYPE_NAMES[tensor.type],
                              _decode(model.buffers[index], tensor))
    return FlatbufferWeights(file_bytes=len(tflite), constant_bytes=constant,
                             op_counts=dict(ops), filter_uses=dict(uses), filters=filters,
                             num_convolutions=convolutions)
