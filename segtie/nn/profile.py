"""Count what a model does per image: every layer use, its weights, FLOPs, activations.

:func:`trace_uses` runs the model once on one zero image and records every layer
call, nested calls included: a tied kernel called at four sites appears four times.
From the record:

- effective parameters: the weights of every *use* of every leaf layer (a layer
  with no nested calls), i.e. the parameter count of the untied network that does
  the same computation (a use of a :class:`~segtie.nn.template_bank.TemplateBank`
  counts the kernel and bias it convolves with, ``k_h k_w C_in C_out + C_out``, and
  so does a use of a :class:`~segtie.nn.filter_basis.FilterBasis`: its composite
  kernel);
- FLOPs: ``2 x`` the multiply-accumulates of every convolution use
  (``H_out W_out k_h k_w C_in C_out`` for ``Conv2D`` and a template bank's use, which
  also mixes its kernel: ``J k_h k_w C_in C_out`` more; ``H_in W_in k_h k_w C_in C_out``
  for ``Conv2DTranspose``; a filter basis's use, with ``b = s + r`` basis filters:
  ``H W b (k_h k_w C_in + C_out)`` when factored, else its composite kernel's
  ``H W k_h k_w C_in C_out`` plus ``b k_h k_w C_in C_out`` to form it); additions of
  biases, normalization, activations and pooling are not counted, as in most FLOP
  tables;
- activation elements per image: the sum of the outputs of every leaf use (what
  backpropagation keeps). Element-wise operations inside a layer's ``call`` (the
  ReLU and additions of a block, the ``s + r`` maps inside a factored filter
  basis) are not layers and are not counted, so this is an estimate. For a block with
  ``recompute=True`` only its output is kept, and its internals are needed again one
  block at a time in the backward pass: the estimate counts the block's output plus
  the largest recomputed block's internals.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math

import keras
import numpy as np

from segtie.nn.dims import CONV_CLASSES, UP_CLASSES
from segtie.nn.filter_basis import FilterBasis
from segtie.nn.recurrent_conv_block import RecurrentConvBlock
from segtie.nn.template_bank import TemplateBank

FLOAT_BYTES = 4
MEGABYTE = 2 ** 20  # the "MB" of reports and budgets


@dataclasses.dataclass
class LayerUse:
    """One call of one layer during :func:`trace_uses`."""

    layer: keras.layers.Layer
    input_shape: tuple
    output_shape: tuple
    parent: int  # index of the enclosing call in the record, -1 at the top
    leaf: bool = True  # no nested layer call
    use: object = None  # the call's ``use`` argument (the call site of a shared layer)


def _shape(x) -> tuple:
    while isinstance(x, (list, tuple)):
        x = x[0]
    return tuple(int(d) for d in x.shape)


@contextlib.contextmanager
def _recording(record: list):
    original = keras.layers.Layer.__call__
    stack = []

    def recorded_call(layer, *args, **kwargs):
        index = len(record)
        record.append(LayerUse(layer, _shape(args[0]) if args else (), (),
                               stack[-1] if stack else -1, use=kwargs.get("use")))
        if stack:
            record[stack[-1]].leaf = False
        stack.append(index)
        try:
            out = original(layer, *args, **kwargs)
        finally:
            stack.pop()
        record[index].output_shape = _shape(out)
        return out

    keras.layers.Layer.__call__ = recorded_call
    try:
        yield record
    finally:
        keras.layers.Layer.__call__ = original


def trace_uses(model: keras.Model, image_size) -> list:
    """Every layer call of one forward pass of ``model`` on one zero image.

    Args:
        model: a model taking ``(1, H, W, C)`` float32 images.
        image_size: ``[H, W]``.

    Returns:
        list of :class:`LayerUse` in call order, the model's own call first.
    """
    channels = int(model.inputs[0].shape[-1])
    image = np.zeros((1, *image_size, channels), dtype="float32")
    record = []
    with _recording(record):
        model(image, training=False)
    return record


def _weights(layer) -> int:
    return int(sum(math.prod(w.shape) for w in layer.weights))


def _use_weights(layer) -> int:
    """The weights one use of ``layer`` computes with (a bank's use: its mixed kernel)."""
    if isinstance(layer, (TemplateBank, FilterBasis)):
        return math.prod(layer.kernel_shape) + (layer.filters if layer.use_bias else 0)
    return _weights(layer)


def effective_parameters(uses: list) -> int:
    """Weights counted once per use: the size of the equivalent untied network."""
    return sum(_use_weights(u.layer) for u in uses if u.leaf)


def conv_macs(uses: list) -> int:
    """Multiply-accumulates of every convolution use, per image."""
    total = 0
    for u in uses:
        layer = u.layer
        if isinstance(layer, TemplateBank):  # the convolution, then the mixing
            kernel = math.prod(layer.kernel_shape)
            total += (math.prod(u.output_shape[1:-1]) + layer.num_templates) * kernel
            continue
        if isinstance(layer, FilterBasis):
            total += _basis_macs(layer, math.prod(u.output_shape[1:-1]))
            continue
        if isinstance(layer, UP_CLASSES):
            spatial = math.prod(u.input_shape[1:-1])
        elif isinstance(layer, CONV_CLASSES):
            spatial = math.prod(u.output_shape[1:-1])
        else:
            continue
        kernel = math.prod(layer.kernel.shape)  # k_h k_w [k_d] C_in C_out
        total += spatial * kernel // getattr(layer, "groups", 1)
    return total


def _basis_macs(layer: FilterBasis, spatial: int) -> int:
    """MACs of one use of a filter basis at ``spatial`` output positions."""
    *kernel, c_in, filters = layer.kernel_shape
    fan_in, basis = math.prod(kernel) * c_in, layer.basis_size + layer.unique_size
    if layer.runs_factored:
        return spatial * basis * (fan_in + filters)
    return (spatial + basis) * fan_in * filters


def _recomputed_block(uses: list, index: int) -> int:
    """Index of the recomputing block enclosing call ``index``, or -1."""
    parent = uses[index].parent
    while parent >= 0:
        layer = uses[parent].layer
        if isinstance(layer, RecurrentConvBlock) and layer.recompute:
            return parent
        parent = uses[parent].parent
    return -1


def activation_elements(uses: list) -> int:
    """Activation elements kept for the backward pass, per image (see module doc)."""
    kept, inside = 0, {}
    for i, u in enumerate(uses):
        size = math.prod(u.output_shape[1:]) if u.output_shape else 0
        block = _recomputed_block(uses, i)
        if block >= 0 and u.leaf:
            inside[block] = inside.get(block, 0) + size
        elif u.leaf:
            kept += size
        elif isinstance(u.layer, RecurrentConvBlock) and u.layer.recompute and block < 0:
            kept += size  # the recomputed block's output is stored
    return kept + max(inside.values(), default=0)


def training_memory_bytes(num_params: int, activations_per_image: int, batch_size: int,
                          optimizer_slots: int = 2) -> int:
    """Estimated memory of one training step, float32.

    ``4 B x (num_params x (2 + optimizer_slots) + batch_size x activations)``: weights,
    gradients and the optimizer's per-weight slots (2 for Adam), plus activations.
    Framework workspace and the input pipeline are not included.
    """
    return FLOAT_BYTES * (num_params * (2 + optimizer_slots)
                          + batch_size * activations_per_image)
