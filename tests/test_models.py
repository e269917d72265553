"""Every registered model: forward shape, gradients, save/load round trip."""

from __future__ import annotations

import json

import pytest
import torch

from faceland.checkpoint import load_model, save_model
from faceland.models import SMOKE_KWARGS, LandmarkModel, create_model, list_models

#: Coordinate-regression models, whose loss is selectable between L1 and Wing.
COORD_MODELS = ["integral", "regression"]


def _small(name: str, **kw) -> LandmarkModel:
    """The registry's small offline configuration (no pretrained weights, tiny input)."""
    return create_model(name, **{"pretrained": False, **SMOKE_KWARGS[name], **kw})


def _input(model: LandmarkModel, batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, 3, model.input_size, model.input_size)


def _target(model: LandmarkModel, batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, model.num_points, 2) * 0.6 + 0.2


def test_registry_lists_the_known_models() -> None:
    assert {"integral", "regression"} <= set(list_models())
    assert list_models() == sorted(list_models())
    with pytest.raises(KeyError, match="registered"):
        create_model("no-such-model")


@pytest.mark.parametrize("name", list_models())
def test_forward_shape_and_range(name: str) -> None:
    """Shapes, and the ranges :class:`~faceland.models.LandmarkModel` promises: scores in
    ``[0, 1]``; coordinates decoded from heatmaps inside the crop, ``[0, 1]`` in normalised
    crop coordinates (0 and 1 are the crop's outer pixel edges). Regression heads are not
    bounded by construction: finite is all they promise."""
    torch.manual_seed(0)
    model = _small(name).eval()
    k = model.num_points
    assert model.config["name"] == name
    x = _input(model)
    with torch.no_grad():
        out = model(x)
        coords, scores = model.predict_with_scores(x)
    c = out["coords"]
    assert c.shape == (2, k, 2) and c.dtype == torch.float32
    assert torch.isfinite(c).all()
    if "heatmaps" in out:
        assert float(c.min()) >= 0.0 and float(c.max()) <= 1.0, (float(c.min()), float(c.max()))
    s = out.get("scores")
    if s is not None:
        assert s.shape == (2, k) and torch.isfinite(s).all()
        assert float(s.min()) >= 0.0 and float(s.max()) <= 1.0, (float(s.min()), float(s.max()))
    assert ("scores" in out) == (scores is not None)
    torch.testing.assert_close(coords, c)
    assert model.predict(x).shape == (2, k, 2)


def _backward_reaches_every_parameter(model: LandmarkModel) -> None:
    value = model.loss(model(_input(model)), _target(model))
    assert value.ndim == 0 and float(value.detach()) > 0
    value.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient reaches: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert sum(float(p.grad.abs().sum()) for p in model.parameters() if p.grad is not None) > 0


@pytest.mark.parametrize("name", list_models())
def test_loss_backward_reaches_every_parameter(name: str) -> None:
    torch.manual_seed(0)
    _backward_reaches_every_parameter(_small(name).train())


@pytest.mark.parametrize("name", COORD_MODELS)
@pytest.mark.parametrize("loss", ["l1", "wing"])
def test_coordinate_losses(name: str, loss: str) -> None:
    torch.manual_seed(0)
    _backward_reaches_every_parameter(_small(name, loss=loss).train())


def test_unknown_loss_raises_at_construction() -> None:
    with pytest.raises(ValueError, match="unknown loss 'l2'"):
        _small("regression", loss="l2")
    model = _small("regression", loss="mse")
    out = model(_input(model, 1))
    target = _target(model, 1)
    torch.testing.assert_close(model.loss(out, target), ((out["coords"] - target) ** 2).mean())


def test_integral_rejects_input_not_multiple_of_16() -> None:
    with pytest.raises(ValueError, match="multiple of 16"):
        create_model("integral", input_size=100, backbone="mobilenet_v2")


@pytest.mark.parametrize("name", list_models())
def test_save_load_round_trip(name: str, tmp_path) -> None:
    torch.manual_seed(0)
    model = _small(name)
    # move BatchNorm statistics and weights away from their defaults so the test is meaningful
    model.train()
    with torch.no_grad():
        model(_input(model, 4))
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 1e-3)
    model.eval()
    x = _input(model)
    with torch.no_grad():
        expected = model(x)["coords"]
    path = save_model(model, tmp_path / "m", card={"data": "test"})
    assert path == tmp_path / "m.safetensors" and path.exists()
    card = json.loads((tmp_path / "m.json").read_text())
    assert card["config"]["name"] == name and card["data"] == "test"
    assert len(card["weights_sha256"]) == 16

    loaded, card2 = load_model(path)
    assert not loaded.training
    assert type(loaded) is type(model) and card2["config"] == card["config"]
    with torch.no_grad():
        got = loaded(x)["coords"]
    assert torch.equal(got, expected)
    fresh = _small(name).eval()
    with torch.no_grad():
        assert not torch.equal(fresh(x)["coords"], expected)  # the weights really were loaded


def test_load_model_missing_path_names_it(tmp_path) -> None:
    missing = tmp_path / "nowhere" / "model.safetensors"
    with pytest.raises(FileNotFoundError) as e:
        load_model(missing)
    assert str(missing) in str(e.value)


def test_load_model_missing_card_and_mismatched_weights(tmp_path) -> None:
    model = _small("regression")
    path = save_model(model, tmp_path / "r.safetensors")
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card_path.unlink()
    with pytest.raises(FileNotFoundError) as e:
        load_model(path)
    assert str(card_path) in str(e.value)
    card["config"]["num_points"] = 98  # the weights have a 68-point head
    card_path.write_text(json.dumps(card))
    with pytest.raises(ValueError, match="do not match"):
        load_model(path)


def test_profiling_counts_conv_and_deformable_flops() -> None:
    """faceland.profiling: FLOPs = 2 x multiply-adds, deformable convolutions included."""
    from torchvision.ops import DeformConv2d

    from faceland.profiling import count_flops, interleaved_medians, median_ms, parameter_count

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False)
            self.deform = DeformConv2d(4, 2, 3, padding=1, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return self.deform(y, torch.zeros(y.shape[0], 18, *y.shape[-2:]))

    net = Net()
    n = 8
    assert count_flops(net, n) == 2 * n * n * (4 * 3 * 9) + 2 * n * n * (2 * 4 * 9)
    assert parameter_count(net) == 4 * 3 * 9 + 2 * 4 * 9
    assert median_ms(lambda: None, 5, warmup=1) >= 0
    assert set(interleaved_medians({"a": lambda: None, "b": lambda: None}, 3, warmup=1)) == {"a",
                                                                                           "b"}


def test_profiling_counts_attention_and_every_registered_model() -> None:
    """count_flops sees attention's matrix products (PyTorch's CPU attention kernel is not in
    the counter's table) and runs on every model, RePFormer included (it failed under
    no_grad: "Expected gradient function to be set")."""
    from faceland.profiling import count_flops

    class Attention(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mha = torch.nn.MultiheadAttention(3, 1, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t = x.flatten(2).transpose(1, 2)  # (1, L, 3) tokens
            return self.mha(t, t, t, need_weights=False)[0]

    n, e = 4, 3
    tokens = n * n
    # in-projection (Q, K, V), Q K^T, A V, out-projection; 2 FLOPs per multiply-add
    expected = (2 * tokens * e * 3 * e + 2 * tokens * tokens * e + 2 * tokens * tokens * e
                + 2 * tokens * e * e)
    assert count_flops(Attention().eval(), n) == expected
    for name in list_models():
        model = create_model(name, **SMOKE_KWARGS[name]).eval()
        assert count_flops(model) > 0, name


@pytest.mark.parametrize("name,legacy", [
    ("hourglass", {"block": "bottleneck", "stem_blocks": 2, "attention_reduction": None}),
    ("repformer", {"top_memory": "attention", "key_pos": False}),
    ("token_regression", {"tokenizer": "grid", "reduce_to": 8}),
])
def test_cards_saved_before_the_fidelity_pass_still_load(tmp_path, name, legacy) -> None:
    """A run card written before layout 2 (no layout_version, none of the new keys) builds the
    earlier layout; re-saving keeps it."""
    import json

    kw = {**SMOKE_KWARGS[name], **legacy}
    if name == "token_regression":
        kw.pop("reductions", None)
    model = create_model(name, **kw).eval()
    path = save_model(model, tmp_path / "old")
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["layout_version"] == 2
    for k in legacy:
        if k != "reduce_to":
            card["config"].pop(k)
    card.pop("layout_version")
    path.with_suffix(".json").write_text(json.dumps(card))
    loaded, _ = load_model(path)
    x = torch.rand(1, 3, model.input_size, model.input_size)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)["coords"], model(x)["coords"])
    resaved, _ = load_model(save_model(loaded, tmp_path / "again"))
    assert all(resaved.config[k] == v for k, v in legacy.items())


def test_write_card_checks_fields_and_refuses_links(tmp_path) -> None:
    """checkpoint.write_card (used by save_model and scripts/release_model.py): fields checked
    before anything is written, the card's order, never through a symbolic link."""
    from faceland.checkpoint import write_card
    from faceland.errors import FormatError
    from faceland.outputs import UnsafeOutputError

    path = write_card(tmp_path / "m.json", {"name": "m", "config": {"name": "integral"},
                                             "scheme": "68", "input_size": 128})
    assert list(json.loads(path.read_text())) == ["config", "scheme", "input_size", "name"]
    with pytest.raises(FormatError, match="input_size"):
        write_card(tmp_path / "bad.json", {"config": {"name": "integral"}, "input_size": -3})
    assert not (tmp_path / "bad.json").exists()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (tmp_path / "link.json").symlink_to(victim)
    with pytest.raises(UnsafeOutputError):
        write_card(tmp_path / "link.json", {"config": {"name": "integral"}})
    assert victim.read_text() == "keep"
