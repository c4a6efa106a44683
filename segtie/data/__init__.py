"""Data: public datasets as TFDS builders, your own folder, and the tf.data pipeline.

- :mod:`~segtie.data.sources`: one TFDS builder per public dataset (Kvasir-SEG,
  DRIVE, Hippocampus volumes) reading the publisher's archive, a folder of image files, a
  folder of NIfTI volumes, and
  :func:`~segtie.data.sources.load_split`, the one entry point to a split's raw
  examples. A new dataset is a new module there plus a line in its ``LOADERS``;
- :mod:`~segtie.data.image_files`: decoding image and mask files (the one JPEG-mask
  threshold); :mod:`~segtie.data.splits`: the seeded split rule and split names;
- :mod:`~segtie.data.preprocess`: the one resize-and-scale, also used by inference
  (TensorFlow only, no TFDS);
- :mod:`~segtie.data.patches`, :mod:`~segtie.data.augment`: random patches and the
  augmentation suite (pure TF, image and mask together);
- :mod:`~segtie.data.nifti`: NIfTI volumes read with nibabel (spacing, affine,
  orientation) and the per-volume z-score; :mod:`~segtie.data.volumes`: volumes
  padded or cropped to one size; :mod:`~segtie.data.augment.volume`: 3-D flips,
  axial quarter turns and intensity;
- :mod:`~segtie.data.pipeline`: raw examples -> batches for Keras, and the cases
  of a split at their original size for evaluation.

This ``__init__`` imports nothing, so that ``segtie.data.preprocess`` can be used
without TensorFlow Datasets.
"""
