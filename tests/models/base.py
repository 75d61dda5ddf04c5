"""One tester for every network (smp's tests/models/base.py pattern).

A subclass names the network and tiny options; every check here then runs on it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import torch
from safetensors.torch import save
from torch import nn

from prrmse.models.registry import build_model

SIZE = 64
CLASSES = 4


class BaseModelTester:
    model_name: ClassVar[str]
    model_options: ClassVar[dict[str, Any]] = {}

    @classmethod
    def build(cls, seed: int = 0) -> nn.Module:
        torch.manual_seed(seed)
        return build_model(cls.model_name, **cls.model_options)

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls) -> nn.Module:
        return cls.build()

    def test_forward_keeps_input_size(self, model: nn.Module) -> None:
        model.eval()
        with torch.no_grad():
            out = model(torch.randn(1, 1, SIZE, SIZE))
        assert out.shape == (1, CLASSES, SIZE, SIZE)
        assert torch.isfinite(out).all()

    def test_every_parameter_gets_a_gradient(self, model: nn.Module) -> None:
        torch.manual_seed(1)
        x, target = torch.randn(2, 1, SIZE, SIZE), torch.randn(2, CLASSES, SIZE, SIZE)
        # Train mode: every parameter takes part (a None grad = a layer forward never
        # runs, smp's depth-3 trap). A conv bias right before a train-mode BN gets an
        # (analytically) zero gradient, BN subtracts it again, so non-zero is checked in
        # eval mode, where running statistics make every parameter matter.
        for training in (True, False):
            model.train(training)
            model.zero_grad(set_to_none=True)
            nn.functional.mse_loss(model(x), target).backward()
            for name, parameter in model.named_parameters():
                assert parameter.grad is not None, f"{name} got no gradient (train={training})"
                assert torch.isfinite(parameter.grad).all(), name
                if not training:
                    assert parameter.grad.abs().sum() > 0, f"{name} got a zero gradient"
        model.zero_grad(set_to_none=True)
        model.eval()

    def test_train_mode_updates_statistics_and_eval_does_not(self) -> None:
        model = self.build()
        x = torch.randn(2, 1, SIZE, SIZE)
        before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
        model.eval()
        with torch.no_grad():
            first, second = model(x), model(x)
        assert torch.equal(first, second)
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
        model.train()
        with torch.no_grad():
            model(x)
        changed = [k for k, v in before.items() if not torch.equal(v, model.state_dict()[k])]
        assert len(changed) == len(before)

    def test_same_seed_gives_identical_bytes(self) -> None:
        first, second = self.build(seed=3), self.build(seed=3)
        assert _state_bytes(first) == _state_bytes(second)
        assert _state_bytes(first) != _state_bytes(self.build(seed=4))

    def test_records_how_it_was_built(self, model: nn.Module) -> None:
        record = model.prrmse_arch
        assert record["name"] == self.model_name
        for key, value in self.model_options.items():
            assert record["options"][key] == value
        rebuilt = build_model(record["name"], **record["options"])
        assert rebuilt.state_dict().keys() == model.state_dict().keys()


def _state_bytes(model: nn.Module) -> bytes:
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    return save(tensors)
