"""Tiny NIfTI volumes and the helpers the NIfTI folder tests share."""

import nibabel as nib
import numpy as np

from segtie.config import DataConfig
from segtie.data.sources import load_split

SHAPE = (8, 9, 7)
RNG = np.random.default_rng(0)
LABEL_MAP = {0: 0, 1: 1, 2: 2}
SPLITS = ("train", "validation", "test")
VOLUME_MODEL = {"spatial_dims": 3, "in_channels": 1, "num_classes": 3}


def save(path, data, affine=None):
    """Write ``data`` as NIfTI-1 (``.nii`` or ``.nii.gz`` by the name), unit spacing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))


def volume():
    """A random float32 volume of ``SHAPE``, values 0-199."""
    return RNG.integers(0, 200, SHAPE).astype(np.float32)


def classes_of(image):
    """The label of ``volume()``: 1 above 100, 2 above 150."""
    return (image > 100).astype(np.uint8) + (image > 150)


def config(root, **kwargs):
    """The ``nifti_folder`` data config of ``root`` with ``LABEL_MAP``."""
    return DataConfig(name="nifti_folder", folder=str(root), image_size=[8, 16, 8],
                      **{"label_map": LABEL_MAP, **kwargs})


def all_cases(data_config):
    """Every case of the three splits by id."""
    return {c["id"].decode(): c for split in SPLITS
            for c in load_split(data_config, split).as_numpy_iterator()}
