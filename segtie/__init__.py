"""segtie: medical-image segmentation with a recurrent U-Net that ties its kernels.

The package is laid out by stage, data flowing one way: :mod:`segtie.config` ->
:mod:`segtie.data` -> :mod:`segtie.nn` -> :mod:`segtie.losses` ->
:mod:`segtie.training` -> :mod:`segtie.inference` -> :mod:`segtie.evaluation` ->
:mod:`segtie.reports`, with :mod:`segtie.metrics` (used by validation and
evaluation alike), :mod:`segtie.tracking` (the only package that imports MLflow) and
:mod:`segtie.cli` (the ``segtie`` command).

Importing ``segtie`` registers every serializable Keras class (the tied layers, the
normalization, the bottleneck state, the loss and the validation metric), so any
``.keras`` file that segtie wrote loads in a process that imported ``segtie``.
Before TensorFlow is imported it also asks, unless the environment says otherwise,
for TensorFlow's BFC allocator on the CPU (``TF_CPU_ALLOCATOR_USE_BFC=true``: the
allocator that keeps the memory statistics ``segtie report`` reads; not every CPU
build uses it by default) and hides TensorFlow's C++ start-up banner
(``TF_CPP_MIN_LOG_LEVEL=2``).
"""

import os

os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from importlib import metadata as _metadata  # noqa: E402

# Registration: each import below runs keras.saving.register_keras_serializable.
from segtie import losses as _losses  # noqa: E402,F401
from segtie import nn as _nn  # noqa: E402,F401
from segtie.metrics import validation as _validation  # noqa: E402,F401

try:
    __version__ = _metadata.version("segtie")
except _metadata.PackageNotFoundError:  # run from a checkout that was not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
