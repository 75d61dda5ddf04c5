"""Linear CKA: known values, a model against itself, blockwise Grams, the CSV and the figure."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from prrmse.analysis.cka import CKA_COLUMNS, cka_matrix, run_cka, select_images
from prrmse.analysis.cka_grams import bn_grams, pass_schedule
from prrmse.analysis.cka_statistic import center_gram, gram_linear, linear_cka
from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file
from prrmse.core.provenance import csv_header, read_csv_provenance
from prrmse.figures.cka import draw_cka_figure
from prrmse.figures.saving import read_figure_provenance
from prrmse.models.checkpoint import save_tensors
from prrmse.models.registry import build_model
from tests.conftest import write_processed

UNET_BN_LAYERS = 18


def feature_space_cka(x: np.ndarray, y: np.ndarray) -> float:
    """The other route (Kornblith eq. 5): |YcᵀXc|²_F / (|XcᵀXc|_F |YcᵀYc|_F)."""
    x, y = x - x.mean(0), y - y.mean(0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


# --- known values -------------------------------------------------------------------------


def test_cka_of_a_representation_with_itself_is_one() -> None:
    x = np.random.default_rng(0).normal(size=(20, 7))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_invariant_to_orthogonal_transforms_and_isotropic_scaling() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 6)), rng.normal(size=(30, 4))
    y = y + x[:, :4]  # related, so the value is not trivially ~0
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    reference = linear_cka(x, y)
    assert 0.2 < reference < 0.95
    assert linear_cka(x @ q, y) == pytest.approx(reference, abs=1e-12)
    assert linear_cka(x[:, rng.permutation(6)], y) == pytest.approx(reference, abs=1e-12)
    assert linear_cka(3.7 * x, 0.01 * y) == pytest.approx(reference, abs=1e-12)
    assert linear_cka(x + 5.0, y) == pytest.approx(reference, abs=1e-12)  # centred


def test_independent_features_with_many_examples_give_small_cka() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(2000, 4)), rng.normal(size=(2000, 4))
    assert linear_cka(x, y) < 0.02


def test_hand_computed_example() -> None:
    # X: the four unit directions (centred already), XᵀX = 2I, |XᵀX| = sqrt(8).
    # Y keeps the first coordinate only: YᵀY = diag(2, 0), |YᵀY| = 2, |YᵀX|² = 4.
    # CKA = 4 / (2 sqrt(8)) = 1/sqrt(2).
    x = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    y = np.array([[1.0, 0.0], [0.0, 0.0], [-1.0, 0.0], [0.0, 0.0]])
    assert linear_cka(x, y) == pytest.approx(1 / np.sqrt(2), abs=1e-12)
    # Uncentred integers against the feature-space formula, an independent route.
    a = np.array([[1.0, 2.0], [3.0, 5.0], [4.0, 4.0], [0.0, 7.0]])
    b = np.array([[2.0, 1.0], [1.0, 1.0], [5.0, 3.0], [2.0, 8.0]])
    assert linear_cka(a, b) == pytest.approx(feature_space_cka(a, b), abs=1e-12)
    # The centred Gram by hand: rows and columns sum to zero.
    gram = center_gram(gram_linear(a))
    assert np.allclose(gram.sum(0), 0) and np.allclose(gram.sum(1), 0)


def test_symmetric_in_its_arguments() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(15, 5)), rng.normal(size=(15, 9))
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), abs=1e-14)


def test_constant_representation_is_undefined_not_a_number() -> None:
    x = np.random.default_rng(4).normal(size=(10, 3))
    assert np.isnan(linear_cka(x, np.ones((10, 3))))


# --- models -------------------------------------------------------------------------------


def unet(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("unet", width=4).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(5).normal(size=(7, 1, 32, 32))).float()


def test_model_against_itself_has_unit_diagonal(images: torch.Tensor) -> None:
    model = unet(1)
    matrix = cka_matrix(model, model, images, batch_size=16)
    assert matrix.shape == (UNET_BN_LAYERS, UNET_BN_LAYERS)
    assert np.allclose(np.diag(matrix), 1.0, atol=1e-6)
    assert np.allclose(matrix, matrix.T, atol=1e-12)
    assert np.all((matrix > -1e-9) & (matrix < 1 + 1e-9))


def test_blockwise_grams_equal_one_big_batch(images: torch.Tensor) -> None:
    model = unet(2)
    layers, whole = bn_grams(model, images, batch_size=64)
    for batch_size in (1, 2, 3, 5):
        _, blocks = bn_grams(model, images, batch_size=batch_size)
        for one, other in zip(whole, blocks, strict=True):
            np.testing.assert_allclose(other, one, rtol=1e-5, atol=1e-8)
    assert [layer.number for layer in layers] == list(range(1, UNET_BN_LAYERS + 1))
    other_model = unet(3)
    assert np.allclose(
        cka_matrix(model, other_model, images, batch_size=3),
        cka_matrix(model, other_model, images, batch_size=64),
        atol=1e-6,
    )


def test_pass_schedule_puts_every_pair_of_images_in_one_pass() -> None:
    assert [p.tolist() for p in pass_schedule(4, 8)] == [[0, 1, 2, 3]]
    for n, batch_size in ((7, 4), (10, 3), (5, 1)):
        passes = pass_schedule(n, batch_size)
        assert all(len(rows) <= max(batch_size, 2) for rows in passes)
        covered = {pair for rows in passes for pair in itertools.product(rows.tolist(), repeat=2)}
        assert covered == set(itertools.product(range(n), repeat=2))


def test_model_left_as_it_was(images: torch.Tensor) -> None:
    model = unet(4).train()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    cka_matrix(model, model, images, batch_size=4)
    assert model.training
    assert all(torch.equal(before[name], t) for name, t in model.state_dict().items())
    assert all(not module._forward_hooks for module in model.modules())


def test_bad_images_and_batch_size_raise(images: torch.Tensor) -> None:
    model = unet(1)
    with pytest.raises(PrrmseError, match="at least 2 images"):
        cka_matrix(model, model, images[:1], batch_size=4)
    with pytest.raises(PrrmseError, match="batch_size"):
        cka_matrix(model, model, images, batch_size=0)
    bad = images.clone()
    bad[2, 0, 3, 3] = float("nan")
    with pytest.raises(PrrmseError, match="NaN"):
        cka_matrix(model, model, bad, batch_size=4)


def test_select_images_is_even_and_deterministic() -> None:
    assert select_images(10, 4).tolist() == [0, 2, 5, 7]
    assert select_images(3, 100).tolist() == [0, 1, 2]
    with pytest.raises(PrrmseError, match="max_images"):
        select_images(10, 1)


# --- the CSV product and the figure -------------------------------------------------------


def save_unet(path: Path, seed: int, broken_bn: bool = False) -> Path:
    model = unet(seed)
    if broken_bn:
        # A negative running variance: eval-mode BN takes its square root, giving NaN.
        model.get_submodule("down2.maxpool_conv.1.double_conv.1").running_var.fill_(-1.0)
    record = {"kind": "model", "name": path.stem, "arch": "unet", "options": {"width": 4}}
    save_tensors(path, model.state_dict(), record)
    return path


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cka")
    # 12 patients x 2 slices: the last 3 patients (6 slices) are the val split.
    data = write_processed(root / "acdc", n_patients=12, slices=2, size=32)
    a = save_unet(root / "unet-seg-acdc-s1.safetensors", 1)
    b = save_unet(root / "unet-auto-t1-s1.safetensors", 2)
    csv = root / "cka" / "unet-seg-acdc-s1_vs_unet-auto-t1-s1.csv"
    run_cka(a, b, data, csv, max_images=5, batch_size=4)
    return {"root": root, "data": data, "a": a, "b": b, "csv": csv}


def test_run_cka_writes_every_layer_pair_with_provenance(product: dict[str, Path]) -> None:
    csv = product["csv"]
    record = read_csv_provenance(csv)
    assert record is not None and record["n_images"] == 5
    assert record["inputs"][str(product["a"])] == sha256_file(product["a"])
    assert record["settings"] == {"max_images": 5, "batch_size": 4, "device": "cpu"}
    table = pd.read_csv(csv, comment="#")
    assert list(table.columns) == CKA_COLUMNS
    assert len(table) == UNET_BN_LAYERS**2
    pairs = set(zip(table["layer_a"], table["layer_b"], strict=True))
    assert pairs == set(itertools.product(range(1, UNET_BN_LAYERS + 1), repeat=2))
    assert set(table["model_a"]) == {"unet-seg-acdc-s1"}
    assert set(table["model_b"]) == {"unet-auto-t1-s1"}
    assert table["module_a"].iloc[0] == "inc.double_conv.1"
    assert table["cka"].between(0, 1 + 1e-9).all()


def test_run_cka_model_against_itself(product: dict[str, Path], tmp_path: Path) -> None:
    table = run_cka(
        product["a"],
        product["a"],
        product["data"],
        tmp_path / "self.csv",
        max_images=6,
        batch_size=6,
    )
    diagonal = table[table["layer_a"] == table["layer_b"]]
    assert len(diagonal) == UNET_BN_LAYERS
    assert np.allclose(diagonal["cka"], 1.0, atol=1e-6)


def test_non_finite_activation_names_the_checkpoint(
    product: dict[str, Path], tmp_path: Path
) -> None:
    broken = save_unet(tmp_path / "broken.safetensors", 1, broken_bn=True)
    out = tmp_path / "cka.csv"
    with pytest.raises(PrrmseError, match="non-finite output of BN 5") as caught:
        run_cka(product["a"], broken, product["data"], out, max_images=4, batch_size=4)
    assert caught.value.where == str(broken)
    assert not out.exists() and not list(tmp_path.glob(".cka.csv*"))


def test_empty_val_split_names_the_index(product: dict[str, Path], tmp_path: Path) -> None:
    data = write_processed(tmp_path / "acdc", n_patients=4, slices=2, size=32)
    index = pd.read_csv(data / "index.csv")
    index["split"] = "train"
    index.to_csv(data / "index.csv", index=False)
    with pytest.raises(PrrmseError, match="val split has 0") as caught:
        run_cka(product["a"], product["b"], data, tmp_path / "c.csv", max_images=4, batch_size=4)
    assert caught.value.where == str(data / "index.csv")


def test_figure_png_pdf_with_provenance_and_same_bytes(
    product: dict[str, Path], tmp_path: Path
) -> None:
    first, second = tmp_path / "one" / "cka", tmp_path / "two" / "cka"
    draw_cka_figure(product["csv"], first)
    draw_cka_figure(product["csv"], second)
    for suffix in (".png", ".pdf"):
        one, two = first.with_suffix(suffix), second.with_suffix(suffix)
        assert one.read_bytes() == two.read_bytes()
        record = read_figure_provenance(one)
        assert record is not None
        assert record["inputs"] == {str(product["csv"]): sha256_file(product["csv"])}


def test_figure_draws_undefined_cells_and_refuses_two_pairs(tmp_path: Path) -> None:
    rows = [
        {
            "model_a": "a",
            "model_b": "b",
            "layer_a": i,
            "module_a": f"m{i}",
            "layer_b": j,
            "module_b": f"n{j}",
            "cka": float("nan") if i == 2 else 0.5,
        }
        for i in (1, 2, 3)
        for j in (1, 2)
    ]
    csv = tmp_path / "hand.csv"
    csv.write_text(csv_header({"n_images": 9}) + pd.DataFrame(rows).to_csv(index=False))
    draw_cka_figure(csv, tmp_path / "hand")
    assert (tmp_path / "hand.png").is_file() and (tmp_path / "hand.pdf").is_file()
    assert json.loads(json.dumps(read_figure_provenance(tmp_path / "hand.pdf")))["figure"]
    two = pd.DataFrame([*rows, {**rows[0], "model_a": "c"}])
    csv.write_text(two.to_csv(index=False))
    with pytest.raises(PrrmseError, match="2 model pairs"):
        draw_cka_figure(csv, tmp_path / "two")
