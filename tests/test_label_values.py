"""Raw mask values to classes (segtie.data.label_values), against hand-made values."""

import numpy as np
import pytest

from segtie.data.label_values import label_table, mask_classes


def test_label_table_maps_each_key_and_leaves_the_rest_background():
    table = label_table({0: 0, 128: 1, 1000: 2})
    assert table.dtype == np.uint8 and table.shape == (65536,)
    assert table[[0, 128, 1000, 1, 65535]].tolist() == [0, 1, 2, 0, 0]
    assert label_table(None) is None


@pytest.mark.parametrize("values, threshold, expected", [
    ([[0, 255], [255, 0]], None, [[0, 1], [1, 0]]),
    ([[0, 1], [1, 1]], None, [[0, 1], [1, 1]]),
    ([[0, 65535], [0, 0]], None, [[0, 1], [0, 0]]),
    ([[0, 3], [200, 255]], 127, [[0, 0], [1, 1]]),  # stray values around a 0/255 mask
])
def test_binary_masks(values, threshold, expected):
    classes = mask_classes(np.array(values, np.uint16), False, None, threshold)
    assert classes.dtype == np.uint8 and classes.tolist() == expected


def test_label_map_and_its_errors():
    values = np.array([[0, 50], [100, 50]], np.uint8)
    assert mask_classes(values, False, {0: 0, 50: 1, 100: 2}).tolist() == [[0, 1], [2, 1]]
    with pytest.raises(ValueError, match=r"values \[100\] are not in the label map "
                                         r"\(keys \[0, 50\]\)"):
        mask_classes(values, False, {0: 0, 50: 1})
    with pytest.raises(ValueError, match=r"values \[0, 50, 100\] are not binary"):
        mask_classes(values, False, None)
    with pytest.raises(ValueError, match="a JPEG mask is lossy"):
        mask_classes(values, True, {0: 0, 50: 1, 100: 2})
    assert mask_classes(np.array([[0, 1]]), True, None).tolist() == [[0, 1]]
