import numpy as np
import torch

from prrmse.training.metrics import NUM_CLASSES, confusion_counts, confusion_counts_tensor


def test_counts_on_tensors_are_the_numpy_counts_exactly():
    rng = np.random.default_rng(3)
    pred = rng.integers(0, NUM_CLASSES, (7, 5, 6), dtype=np.uint8)
    truth = rng.integers(0, NUM_CLASSES - 1, (7, 5, 6), dtype=np.uint8)  # class 3 never true
    volumes = np.array([0, 0, 2, 2, 2, 4, 4])  # volumes 1 and 3 have no slice here
    expected = confusion_counts(pred, truth, volumes, 5)
    got = confusion_counts_tensor(
        torch.from_numpy(pred), torch.from_numpy(truth), torch.from_numpy(volumes), 5
    )
    assert got.dtype == torch.int64
    np.testing.assert_array_equal(got.numpy(), expected)
    assert expected[1].sum() == 0 and expected[:, 3, 2].sum() == 0  # the cases it covers


def test_predicted_values_outside_the_classes_are_left_out_as_in_numpy():
    pred = np.array([[[0, 1, NUM_CLASSES, 255]]], dtype=np.uint8)
    truth = np.array([[[0, 1, 1, 0]]], dtype=np.uint8)
    volumes = np.array([1])
    expected = confusion_counts(pred, truth, volumes, 2)
    got = confusion_counts_tensor(
        torch.from_numpy(pred), torch.from_numpy(truth), torch.from_numpy(volumes), 2
    )
    np.testing.assert_array_equal(got.numpy(), expected)
    assert expected[1, :, 2].tolist() == [2, 2] + [0] * (NUM_CLASSES - 2)  # true 0 and 1: two each
