"""Shared fixtures: the real Kvasir-SEG and DRIVE archives and their TFDS builds.

The archive is read from ``../shared/data/kvasir-seg.zip`` (relative to the repository
root). Building the TFDS data takes about 20 s on 2 CPU cores for each; it happens once per
session, in a temporary folder, or in ``$SEGTIE_TEST_TFDS_DIR`` when that is set
(then it is reused across sessions; delete the folder after changing the builder).
Tests that need an archive are skipped, with the reason, when it is absent (they
fail instead under ``SEGTIE_REQUIRE_DATA=1``, as in CI; see ``realdata.py``).
"""

import functools
import os
from pathlib import Path

import keras
import numpy as np
import pytest

from segtie.config import DataConfig
from segtie.data.sources import drive, hippocampus
from segtie.data.sources.kvasir_seg import ARCHIVE_NAME, MANUAL_DIR_ENV, prepare_kvasir_seg

from realdata import SHARED_DATA, require_archive

KVASIR_ARCHIVE = SHARED_DATA / ARCHIVE_NAME
DRIVE_ARCHIVE = SHARED_DATA / drive.ARCHIVE_NAME
HIPPOCAMPUS_ARCHIVE = SHARED_DATA / hippocampus.ARCHIVE_NAME
TFDS_DIR_ENV = "SEGTIE_TEST_TFDS_DIR"


def _prepare(prepare_fn, archive: Path, tmp_path_factory, name: str) -> Path:
    """Build a TFDS dataset from the shared ``archive`` into ``$SEGTIE_TEST_TFDS_DIR``
    (reused across sessions) or a fresh temporary folder ``name``."""
    env = os.environ.get(TFDS_DIR_ENV)
    data_dir = Path(env) if env else tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(MANUAL_DIR_ENV, raising=False)  # build from the shared archive
        prepare_fn(data_dir, archive.parent)
    return data_dir


@pytest.fixture(scope="session")
def kvasir_archive() -> Path:
    """Path of the real ``kvasir-seg.zip``; skips the test when it is absent."""
    return require_archive(KVASIR_ARCHIVE)


@pytest.fixture(scope="session")
def kvasir_tfds_dir(kvasir_archive, tmp_path_factory) -> Path:
    """A TFDS data folder holding the prepared ``kvasir_seg`` dataset (built once)."""
    return _prepare(prepare_kvasir_seg, kvasir_archive, tmp_path_factory, "tfds")


@pytest.fixture(scope="session")
def kvasir_data_config(kvasir_tfds_dir) -> DataConfig:
    """Default :class:`DataConfig` reading the prepared Kvasir-SEG build.

    ``manual_dir`` is the shared data folder and ``data_dir`` the session's TFDS
    folder; change other values with ``dataclasses.replace``.
    """
    return DataConfig(data_dir=str(kvasir_tfds_dir), manual_dir=str(SHARED_DATA))


@pytest.fixture(scope="session")
def drive_archive() -> Path:
    """Path of the real ``DRIVE.zip``; skips the test when it is absent."""
    return require_archive(DRIVE_ARCHIVE)


@pytest.fixture(scope="session")
def drive_tfds_dir(drive_archive, tmp_path_factory) -> Path:
    """A TFDS data folder holding the prepared ``drive`` dataset (built once)."""
    return _prepare(drive.prepare_drive, drive_archive, tmp_path_factory, "tfds_drive")


@pytest.fixture(scope="session")
def drive_data_config(drive_tfds_dir) -> DataConfig:
    """:class:`DataConfig` for the prepared DRIVE build (``name: drive``)."""
    return DataConfig(name="drive", data_dir=str(drive_tfds_dir),
                      manual_dir=str(SHARED_DATA))


@pytest.fixture(scope="session")
def hippocampus_archive() -> Path:
    """Path of the real ``hippocampus-msd-udacity.zip``; skips the test when it is absent."""
    return require_archive(HIPPOCAMPUS_ARCHIVE)


@pytest.fixture(scope="session")
def hippocampus_tfds_dir(hippocampus_archive, tmp_path_factory) -> Path:
    """A TFDS folder holding the ``hippocampus/skip_invalid`` build (about 8 s, once)."""
    prepare = functools.partial(hippocampus.prepare_hippocampus, skip_invalid=True)
    return _prepare(prepare, hippocampus_archive, tmp_path_factory, "tfds_hippocampus")


@pytest.fixture(scope="session")
def hippocampus_data_config(hippocampus_tfds_dir) -> DataConfig:
    """:class:`DataConfig` for the prepared Hippocampus build (``skip_invalid: true``)."""
    return DataConfig(name="hippocampus", data_dir=str(hippocampus_tfds_dir),
                      manual_dir=str(SHARED_DATA), skip_invalid=True)


@pytest.fixture(scope="session")
def channel0_model():
    """A known model: one 1x1 convolution with logits = 10 * (channel0 - 0.5).

    Any input size; a pixel's logit depends only on that pixel's first channel.
    """
    net = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(1, 1)])
    kernel = np.zeros((1, 1, 3, 1), np.float32)
    kernel[0, 0, 0, 0] = 10.0
    net.layers[0].set_weights([kernel, np.array([-5.0], np.float32)])
    return net
