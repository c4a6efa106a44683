"""The config groups: frozen dataclasses whose fields carry their validation rules.

``data`` and its ``augment`` are in :mod:`segtie.config.data_groups` (imported here),
the field helpers in :mod:`segtie.config.fields`.

Each field's ``metadata`` holds ``low``, ``high`` and ``choices``, checked by
:mod:`segtie.config.checks` when a config is built.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from segtie.config.data_groups import FOLDER_SOURCES, AugmentConfig, DataConfig  # noqa: F401
from segtie.config.fields import check_size, check_spacing  # noqa: F401
from segtie.config.fields import field as _field

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")  # Keras dtype policies
DISTRIBUTE = ("none", "mirrored", "multi_worker")  # segtie.training.distribute.STRATEGIES


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The U-Net with tied kernels (see :mod:`segtie.nn.unet` for the schemes).

    Tying: ``num_iterations`` uses of one kernel in each block; ``tie_levels`` one
    encoder block for every level (needs ``width_multiplier: 1``, and
    ``level_projection`` unless the image has ``base_filters`` channels);
    ``tie_decoder`` the same for the decoder; ``num_recurrences`` passes of the
    whole network, trained on every pass with weights ``recurrence_loss_decay **
    (R - r)`` normalised to sum 1. ``num_iterations: 1, tie_levels: false,
    num_recurrences: 1`` is the plain U-Net. ``tied: false`` gives every use of a
    block's kernel its own kernel: the untied reference of the same depth and
    compute, with ``num_iterations`` times the block kernels' weights.
    ``recompute`` trades compute for activation memory. With ``param_budget``
    (weights) or ``memory_budget_mb`` (estimated training-step memory),
    ``base_filters`` is replaced by the widest base width that fits. ``num_classes`` is the number of logit channels: 1 for
    binary data (sigmoid), ``K + 1`` for a folder ``data.label_map`` with classes
    0..K, K >= 2, or any ``nifti_folder`` one (softmax); it is checked against the data
    (:func:`implied_num_classes`). ``spatial_dims: 3`` builds the same network, every
    tying scheme included, from 3-D layers for volumes (``hippocampus``,
    ``nifti_folder``; ``in_channels: 1``).
    ``num_templates: J`` (0 = off) replaces each block's tied kernel by soft sharing
    (Savarese & Maire 2019): every use (iteration, and level with ``tie_levels`` or
    ``tie_decoder``) mixes its own kernel from the block's one bank of ``J``
    templates, a dial from tied (``J = 1``, plus a scale per use) to untied (``J`` =
    the uses); it needs ``tied: true`` and at most as many templates as uses.
    ``basis_size: s`` (0 = off) replaces it by a shared filter basis instead (Kang et
    al. 2020): every use mixes the ``s`` filters of its block's one basis, plus
    ``basis_unique`` filters of its own, with its own 1x1 coefficients;
    ``basis_ratio`` sizes the basis as that fraction of each block's width instead
    (so it follows the width a budget picks). It needs ``tied: true`` and no bank.
    ``basis_orthogonality: lambda`` (0 = off) adds Kang et al.'s orthogonality
    regulariser of each basis, ``lambda`` times its basis similarity
    (:meth:`segtie.nn.FilterBasis.similarity`), to the training loss.
    ``conv_bias: false`` drops the bias of every block convolution, which the norm
    after it cancels exactly (same functions, ``F`` fewer weights per convolution;
    measured no faster per step with oneDNN, see README; needs a ``norm``).
    ``deep_supervision: true`` (nnU-Net's, Isensee et al. 2021) trains decoder levels
    ``1 .. depth - 3`` as well, each through a 1x1 head of the training model only,
    against the labels subsampled to its resolution; level ``i``'s loss weighs ``2 **
    -i`` (the coarsest decoder level 0, as nnU-Net), normalised to sum 1
    (:mod:`segtie.nn.deep_supervision`). Needs ``depth >= 4`` and
    ``num_recurrences: 1``; the saved model is the same as without it.
    """

    in_channels: int = _field(3, low=1)
    num_classes: int = _field(1, low=1)
    base_filters: int = _field(16, low=1)
    depth: int = _field(4, low=1, high=8)
    num_iterations: int = _field(2, low=1)
    norm: str = _field("instance", choices=("batch", "instance", "none"))
    norm_per_iteration: bool = False
    tied: bool = True  # false: one kernel per use (the untied reference, same FLOPs)
    dropout: float = _field(0.0, low=0.0, high=0.99)
    width_multiplier: int = _field(2, low=1)  # level i has base_filters * this ** i
    tie_levels: bool = False
    tie_decoder: bool = False
    level_projection: bool = False  # 1x1 conv where a level's input width differs
    norm_per_level: bool = True  # tied levels keep their own normalization
    num_recurrences: int = _field(1, low=1)
    recurrence_loss_decay: float = _field(1.0, low=0.0, high=1.0)
    recompute: bool = False
    param_budget: Optional[int] = _field(None, low=1)
    memory_budget_mb: Optional[float] = _field(None, low=0.0)
    spatial_dims: int = _field(2, choices=(2, 3))  # 3: volumes, Conv3D (segtie.nn.dims)
    num_templates: int = _field(0, low=0)  # >= 1: a bank of this many templates per block
    basis_size: int = _field(0, low=0)  # >= 1: a shared filter basis of this many filters
    basis_unique: int = _field(0, low=0)  # per-use basis filters added to the shared ones
    basis_ratio: float = _field(0.0, low=0.0)  # > 0: basis_size = this x the block's width
    basis_orthogonality: float = _field(0.0, low=0.0)  # Kang et al.'s regulariser weight
    deep_supervision: bool = False  # nnU-Net's: coarser decoder levels get a loss too
    conv_bias: bool = True  # false: no bias in the blocks' convolutions (the norm cancels it)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation. ``learning_rate`` is the peak rate of the schedule.

    The loss is ``dice_weight * soft Dice + bce_weight * cross-entropy``
    (:class:`segtie.losses.DiceCELoss`): binary cross-entropy for one output,
    sparse categorical cross-entropy for ``model.num_classes > 1``.
    ``precision`` is the Keras dtype policy the model is built with:
    ``mixed_bfloat16`` (CPUs with AMX/AVX512-BF16, TPUs, Ampere GPUs) or
    ``mixed_float16`` (GPUs, with loss scaling) compute in 16 bits with float32
    weights; the logits, loss and normalization statistics stay float32.

    ``max_minutes`` (``null``: no cap, the default; the recipe's epochs are what a
    result is reproduced with) stops after the epoch during which the time ran out;
    a run cut short says so on the console, in ``run_info.json`` (``stop_reason``)
    and as the MLflow tag ``segtie.stop_reason``. ``target_val_dice`` (``null``: off)
    stops after the first epoch whose validation Dice reaches it, likewise recorded
    (:class:`segtie.training.callbacks.TargetDice`). ``ema_momentum`` (``null``: off)
    keeps an exponential moving average of the weights (Polyak & Juditsky, SIAM J.
    Control Optim. 1992; Keras' ``use_ema``): ``average = m * average + (1 - m) *
    weights`` after every step, the first step copying; validation, the best checkpoint
    and the model a run ends with use the average, the backup the raw weights
    (:class:`segtie.training.callbacks.EMAWeights`). ``deterministic`` makes TensorFlow
    pick deterministic kernels (``tf.config.experimental.enable_op_determinism``), so
    two runs with the same ``seed`` on the same machine give the same weights and
    metrics, and a resumed run those of an uninterrupted one.

    ``init_from`` (``null``: off) starts a new run from the weights of a trained
    checkpoint instead of a random initialisation (nnU-Net's ``-pretrained_weights``):
    a ``.keras`` path or an MLflow model URI of a model of the same architecture
    (every variable's shape must match, in order; the optimizer starts afresh, with
    this config's schedule). A resumed run keeps its own weights.

    ``distribute`` (:mod:`segtie.training.distribute`): ``none``, ``mirrored`` (the
    GPUs of one machine) or ``multi_worker`` (one process per machine, ``TF_CONFIG``);
    ``data.batch_size`` is then the global batch, split across the replicas, and
    ``learning_rate`` is used as it is. A worker waits ``cluster_timeout_seconds`` for
    the others, then exits naming the addresses that did not answer.
    """

    epochs: int = _field(20, low=1)
    optimizer: str = _field("adam", choices=("adam", "adamw", "sgd"))
    learning_rate: float = _field(1e-3, low=0.0)
    weight_decay: float = _field(0.0, low=0.0)
    schedule: str = _field("cosine", choices=("cosine", "constant"))
    warmup_epochs: int = _field(0, low=0)
    dice_weight: float = _field(1.0, low=0.0)
    bce_weight: float = _field(1.0, low=0.0)
    seed: int = _field(42, low=0)
    output_dir: str = "runs"
    max_minutes: Optional[float] = _field(None, low=0.0)
    target_val_dice: Optional[float] = _field(None, low=0.0, high=1.0)
    ema_momentum: Optional[float] = _field(None, low=0.0, high=1.0)
    init_from: Optional[str] = None
    precision: str = _field("float32", choices=PRECISIONS)
    deterministic: bool = True
    distribute: str = _field("none", choices=DISTRIBUTE)
    cluster_timeout_seconds: float = _field(120.0, low=1.0)


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Evaluation: inference options, metric settings and report statistics.

    ``threshold`` applies to probabilities (sigmoid of logits). ``spacing`` is
    ``[row, col]`` mm per pixel (``null``: the dataset's, else pixels);
    ``nsd_tolerance`` is in the same unit as the distances (mm, or pixels without a
    spacing). ``sliding_window`` runs the model on ``window_size`` tiles of the image
    at its original resolution (``null`` = ``data.image_size``) overlapping by
    ``overlap``, blended with a Gaussian of sigma ``gaussian_sigma_scale`` x window
    when ``gaussian``; otherwise the whole image is resized to ``data.image_size``.
    ``tta_mirror`` averages the logits of the four flips; ``tta_transpose`` averages
    them with those of the transposed image (with both, the eight symmetries of the
    square: 8x the inference time; 2-D only). ``keep_probabilities``
    adds AUC and average precision, ``accuracy`` the pixel accuracy; both are on
    automatically when the cases carry a field of view (DRIVE), whose metrics are
    then computed inside it. ``bootstrap_samples: 0`` leaves out the confidence
    interval of the mean. Multi-class models (``model.num_classes > 1``) take the
    argmax (``threshold`` unused) and are scored per class.
    """

    threshold: float = _field(0.5, low=0.0, high=1.0)
    output_dir: str = "runs/eval"
    num_overlays: int = _field(4, low=0)
    spacing: Optional[list] = None
    nsd_tolerance: float = _field(2.0, low=0.0)
    sliding_window: bool = False
    window_size: Optional[list] = None
    overlap: float = _field(0.5, low=0.0, high=0.95)
    gaussian: bool = True
    gaussian_sigma_scale: float = _field(0.125, low=0.01, high=10.0)
    sw_batch_size: int = _field(4, low=1)
    tta_mirror: bool = False
    tta_transpose: bool = False
    largest_component: bool = False
    keep_probabilities: bool = False
    accuracy: bool = False
    bootstrap_samples: int = _field(1000, low=0)
    confidence_level: float = _field(0.95, low=0.5, high=0.999)
    seed: int = _field(0, low=0)

    def __post_init__(self):
        check_spacing("eval.spacing", self.spacing)
        check_size("eval.window_size", self.window_size, optional=True)


@dataclasses.dataclass(frozen=True)
class TrackingConfig:
    """MLflow tracking. ``tracking_uri: null`` means ``MLFLOW_TRACKING_URI`` if set,
    else a SQLite store ``mlflow.db`` in the project folder; ``experiment: null``
    means the dataset name. Training keeps everything it tracks in the run folder
    first (``tracking.jsonl``); when the store cannot be reached it retries after
    ``retry_seconds`` (at the next epoch end after that) and at the end, and
    ``segtie sync RUN_FOLDER`` sends the rest later. ``system_metrics`` samples
    MLflow's system metrics (CPU, memory, disk, network; GPU where MLflow finds one)
    every ``system_metrics_interval`` seconds while training, into the same journal
    (:mod:`segtie.tracking.system`)."""

    enabled: bool = True
    tracking_uri: Optional[str] = None
    experiment: Optional[str] = None
    retry_seconds: float = _field(60.0, low=0.0)
    system_metrics: bool = True
    system_metrics_interval: float = _field(10.0, low=0.5)


@dataclasses.dataclass(frozen=True)
class Config:
    """The whole configuration: one object with five groups."""

    data: DataConfig = _field(DataConfig, factory=True)
    model: ModelConfig = _field(ModelConfig, factory=True)
    train: TrainConfig = _field(TrainConfig, factory=True)
    eval: EvalConfig = _field(EvalConfig, factory=True)
    tracking: TrackingConfig = _field(TrackingConfig, factory=True)

