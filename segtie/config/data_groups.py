"""The data groups of a config: ``data`` (:class:`DataConfig`) and its ``augment``.

Frozen dataclasses whose fields carry their validation rules (:mod:`segtie.config.fields`).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from segtie.config.fields import check_size, check_spacing, is_number
from segtie.config.fields import field as _field

__all__ = ["AugmentConfig", "DataConfig", "FOLDER_SOURCES"]

FOLDER_SOURCES = ("folder", "nifti_folder")  # DataConfig.name values read from data.folder


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """On-the-fly training augmentation; image and mask are transformed together.

    Each transform has a probability ``*_prob`` (0 = off). ``flip`` and ``rotate90``
    switch the exact transforms on or off (kept from the first configs);
    ``flip_prob`` applies to each axis; a quarter turn draws 0, 90, 180 or 270
    degrees (0 or 180 on non-square images). Ranges are ``[low, high]``;
    ``rotate_max_degrees`` bounds a uniform angle in [-max, max]; ``scale_range`` > 1
    zooms in; elastic deformation follows Simard et al. 2003 (``elastic_alpha`` and
    ``elastic_sigma`` in pixels); ``noise_std`` is the largest standard deviation of
    the Gaussian noise on [0, 1] images. The defaults give flips and quarter turns
    only; ``segtie.data.augment.NNUNET_LIKE`` lists an nnU-Net-like suite.

    Volumes (:func:`segtie.data.augment.volume.augment_volume`): ``rotate_prob``
    draws one angle about each of the three axes, each uniform in
    [-``rotate_max_degrees``, ``rotate_max_degrees``] (nnU-Net's 3-D value is 30; the
    default 180 suits 2-D), and ``scale_prob`` one isotropic factor in
    ``scale_range``; the image is resampled trilinearly and the mask by nearest
    neighbour, filled with 0 outside. Quarter turns are in the plane of axes 0 and
    1, flips on each of the three axes, ``noise_std`` in z-score units;
    ``elastic_prob``, ``blur_prob`` and ``gamma_prob`` must be 0.
    """

    flip: bool = True  # random left-right and up-down flips
    rotate90: bool = True  # random multiple of 90 degrees (square images only)
    flip_prob: float = _field(0.5, low=0.0, high=1.0)
    rotate90_prob: float = _field(1.0, low=0.0, high=1.0)
    rotate_prob: float = _field(0.0, low=0.0, high=1.0)
    rotate_max_degrees: float = _field(180.0, low=0.0, high=180.0)
    scale_prob: float = _field(0.0, low=0.0, high=1.0)
    scale_range: list = _field(lambda: [0.7, 1.4], factory=True)
    elastic_prob: float = _field(0.0, low=0.0, high=1.0)
    elastic_alpha: float = _field(34.0, low=0.0)
    elastic_sigma: float = _field(4.0, low=0.1, high=50.0)
    noise_prob: float = _field(0.0, low=0.0, high=1.0)
    noise_std: float = _field(0.05, low=0.0, high=1.0)
    blur_prob: float = _field(0.0, low=0.0, high=1.0)
    blur_sigma_range: list = _field(lambda: [0.5, 1.0], factory=True)
    brightness_prob: float = _field(0.0, low=0.0, high=1.0)
    brightness_range: list = _field(lambda: [0.75, 1.25], factory=True)
    contrast_prob: float = _field(0.0, low=0.0, high=1.0)
    contrast_range: list = _field(lambda: [0.75, 1.25], factory=True)
    gamma_prob: float = _field(0.0, low=0.0, high=1.0)
    gamma_range: list = _field(lambda: [0.7, 1.5], factory=True)

    def __post_init__(self):
        for name in ("scale_range", "blur_sigma_range", "brightness_range",
                     "contrast_range", "gamma_range"):
            value = getattr(self, name)
            if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
                    and 0 < value[0] <= value[1] <= 10):
                raise ValueError(f"`data.augment.{name}` must be [low, high] with 0 < low <= "
                                 f"high <= 10, received {value!r}")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the data is and how it is fed to the model.

    ``image_size`` is ``[height, width]`` in pixels after resizing (volumes:
    ``[depth, height, width]``, padded or cropped about the centre, never resampled). ``manual_dir`` is
    the folder holding the publisher's archive when there is no network; the
    environment variable ``SEGTIE_MANUAL_DIR`` overrides it. ``max_train_cases``
    caps the training split (``null`` = all), for quick runs and tests.
    ``train_on_validation`` trains on the train and validation cases together
    (nnU-Net's ``fold all``, the papers' use of all 20 DRIVE training images): the
    test split is untouched, but the validation Dice of such a run scores images it
    trained on, so it is optimistic and its best checkpoint is the best epoch on seen
    images, not necessarily the last (DRIVE, 90 epochs: epoch 65).

    ``name: folder`` reads your own data from ``folder`` (``images/`` and ``masks/``,
    see :mod:`segtie.data.sources.folder`); ``label_map`` maps raw mask values (palette
    indices for palette images) to class indices 0..K (``null``: binary masks, 0/1
    0/255 or 0/65535); ``mask_threshold`` makes binary masks with stray values
    usable (foreground = raw value > threshold). ``name: nifti_folder`` reads your
    own 3-D NIfTI volumes from ``folder`` (``images/`` and ``labels/``, or
    ``imagesTr/`` and ``labelsTr/``; see :mod:`segtie.data.sources.nifti_folder`), and
    needs a ``label_map`` (raw label value -> class index, e.g. ``{0: 0, 1: 1, 2: 2}``). ``spacing`` is ``[row, col]`` mm per
    pixel of the dataset (``null``: unknown). ``patch_size`` switches training to random ``[height, width]`` patches
    of the image at ``image_size``, ``patches_per_image`` per image and epoch, a
    fraction ``patch_foreground_prob`` of them centred on a foreground pixel.
    ``skip_invalid`` builds a dataset whose archive has unpaired or mismatched files
    from its valid pairs (recorded in the dataset info and the MLflow run) instead
    of refusing it with the list (``hippocampus``, ``nifti_folder``).
    """

    name: str = _field("kvasir_seg", choices=("kvasir_seg", "drive", "folder", "hippocampus",
                                              "nifti_folder"))
    data_dir: str = "data/tfds"
    manual_dir: str = "data"
    image_size: list = _field(lambda: [128, 128], factory=True)
    batch_size: int = _field(8, low=1)
    max_train_cases: Optional[int] = _field(None, low=1)
    train_on_validation: bool = False
    max_eval_cases: Optional[int] = _field(None, low=1)
    shuffle_buffer: int = _field(1000, low=1)
    cache: bool = True
    augment: AugmentConfig = _field(AugmentConfig, factory=True)
    folder: Optional[str] = None
    label_map: Optional[dict] = None
    mask_threshold: Optional[int] = _field(None, low=0, high=65534)
    spacing: Optional[list] = None
    patch_size: Optional[list] = None
    patches_per_image: int = _field(1, low=1)
    patch_foreground_prob: float = _field(0.33, low=0.0, high=1.0)
    skip_invalid: bool = False

    def __post_init__(self):
        if (self.name in FOLDER_SOURCES) != (self.folder is not None):
            raise ValueError(f"`data.folder` must be set exactly when `data.name` is "
                             f"'folder' or 'nifti_folder', received name={self.name!r}, "
                             f"folder={self.folder!r}")
        if self.label_map is not None:
            _check_label_map(self.label_map, self.name)
        elif self.name == "nifti_folder":
            raise ValueError("`data.label_map` is required for `data.name: nifti_folder`: "
                             "a folder of volumes states its classes nowhere else; map "
                             "each raw label value to a class index 0..K, e.g. "
                             "`label_map: {0: 0, 1: 1, 2: 2}`, received null")
        if self.mask_threshold is not None and (self.name != "folder" or self.label_map):
            raise ValueError(f"`data.mask_threshold` applies to the binary masks of "
                             f"`data.name: folder` without `data.label_map`, received "
                             f"name={self.name!r}, label_map={self.label_map!r}")
        check_spacing("data.spacing", self.spacing)
        check_size("data.image_size", self.image_size)
        check_size("data.patch_size", self.patch_size, optional=True, limit=self.image_size)


def _check_label_map(label_map: dict, name: str) -> None:
    """Raw values 0..65535 -> class indices covering 0..K, 1 <= K <= 255 (folders only)."""
    if name not in FOLDER_SOURCES:
        raise ValueError(f"`data.label_map` applies to `data.name: folder` or "
                         f"`nifti_folder` only, received name={name!r}")
    for raw, label in label_map.items():
        if not (isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= 65535
                and isinstance(label, int) and not isinstance(label, bool)
                and 0 <= label <= 255):
            raise ValueError(f"`data.label_map` must map raw mask values (integers 0..65535)"
                             f" to class indices (integers 0..255), received {raw!r}: "
                             f"{label!r}")
    classes = sorted(set(label_map.values()))
    if classes != list(range(len(classes))) or len(classes) < 2:
        raise ValueError(f"`data.label_map` class indices must be 0, 1, ..., K with K >= 1 "
                         f"(0 = background), received {classes}")
