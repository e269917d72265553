"""Heatmap / small-CNN models (hourglass, unet_softmax, imm_*_cnn), their configs and scheme "1"."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from faceland.checkpoint import load_model, save_model
from faceland.codecs import GaussianHeatmap, SoftmaxHeatmap
from faceland.losses import weighted_mse_loss
from faceland.models import SMOKE_KWARGS, create_model
from faceland.models.hourglass import add_coord_channels
from faceland.models.layers import CoordinateAttention, SqueezeExcitation
from faceland.models.unet import softmax_cross_entropy

MODELS = ["hourglass", "unet_softmax", "imm_nose_cnn", "imm_face_cnn"]
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _smoke(name: str, **kw):
    return create_model(name, pretrained=False, **{**SMOKE_KWARGS[name], **kw})


@pytest.mark.parametrize("name", MODELS)
def test_smoke_forward_backward_and_save_load(name: str, tmp_path) -> None:
    torch.manual_seed(0)
    model = _smoke(name, num_points=5).train()
    n = model.input_size
    x = torch.rand(2, 3, n, n)
    out = model(x)
    assert out["coords"].shape == (2, 5, 2) and torch.isfinite(out["coords"]).all()
    target = torch.rand(2, 5, 2) * 0.6 + 0.2
    loss = model.loss(out, target)
    assert loss.ndim == 0 and float(loss.detach()) > 0
    loss.backward()
    missing = [k for k, p in model.named_parameters() if p.grad is None]
    assert not missing, missing[:5]
    model.eval()
    with torch.no_grad():
        expected = model(x)["coords"]
    loaded, _ = load_model(save_model(model, tmp_path / "m"))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)["coords"], expected)


def test_hourglass_shapes_stacks_and_options() -> None:
    torch.manual_seed(0)
    model = create_model("hourglass", num_points=7, input_size=64, stacks=3, depth=2, channels=8)
    out = model.eval()(torch.rand(2, 3, 64, 64))
    assert out["heatmaps"].shape == (2, 7, 16, 16)  # 1/4 of the input
    assert out["stack_heatmaps"].shape == (3, 2, 7, 16, 16)
    assert torch.equal(out["stack_heatmaps"][-1], out["heatmaps"])
    assert isinstance(model.codec, GaussianHeatmap) and model.codec.offset
    assert model.codec.decoder == "subpixel" and model.codec.size == (16, 16)
    # the coordinates are the sub-pixel decoding of the last heatmaps
    torch.testing.assert_close(out["coords"], model.codec.decode(out["heatmaps"])[0])
    assert model.stem[0].in_channels == 5  # RGB + CoordConv x, y
    assert create_model("hourglass", input_size=64, depth=2, channels=8,
                        coordconv=False).stem[0].in_channels == 3
    for att, cls in (("ca", CoordinateAttention), ("se", SqueezeExcitation)):
        m = create_model("hourglass", input_size=64, depth=2, channels=8, attention=att)
        assert sum(isinstance(mod, cls) for mod in m.modules()) == 2 * 2  # depth x stacks
    m = create_model("hourglass", input_size=64, depth=2, channels=8, attention="none")
    assert not any(isinstance(mod, (CoordinateAttention, SqueezeExcitation)) for mod in m.modules())
    for bad in ({"attention": "cbam"}, {"loss": "l2"}, {"codec": "dark"}, {"input_size": 72},
                {"pretrained": True}):
        with pytest.raises(ValueError):
            create_model("hourglass", **{"input_size": 64, "depth": 2, "channels": 8, **bad})


def test_hourglass_loss_is_summed_over_stacks() -> None:
    torch.manual_seed(0)
    model = create_model("hourglass", num_points=3, input_size=32, stacks=2, depth=1, channels=8)
    out = model(torch.rand(2, 3, 32, 32))
    target = torch.rand(2, 3, 2) * 0.6 + 0.2
    t = model.codec.encode(target)
    expected = sum(weighted_mse_loss(h, t) for h in out["stack_heatmaps"])
    torch.testing.assert_close(model.loss(out, target), expected)
    for loss in ("mse", "awing"):
        m = create_model("hourglass", num_points=3, input_size=32, depth=1, channels=8, loss=loss)
        assert float(m.loss(m(torch.rand(1, 3, 32, 32)), target[:1]).detach()) > 0


def test_attention_blocks_and_coord_channels() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 16, 6, 10)
    for block in (CoordinateAttention(16), SqueezeExcitation(16)):
        y = block.eval()(x)
        assert y.shape == x.shape
        assert bool(((y.abs() <= x.abs() + 1e-6)).all())  # sigmoid gates only shrink
    c = add_coord_channels(torch.zeros(1, 3, 2, 4))
    assert c.shape == (1, 5, 2, 4)
    assert c[0, 3, 0].tolist() == pytest.approx([-0.75, -0.25, 0.25, 0.75])
    assert c[0, 4, :, 0].tolist() == pytest.approx([-0.5, 0.5])


@pytest.mark.parametrize("stacks,depth,channels,mb", [(1, 4, 128, 6.12), (2, 4, 128, 11.8),
                                                     (2, 5, 128, 14.2), (3, 3, 128, 14.0),
                                                     (4, 2, 128, 13.8)])
def test_hourglass_reproduces_seed001_table1_sizes(stacks: int, depth: int, channels: int,
                                                   mb: float) -> None:
    """Seed 001 Table 1 (model size in MB, no attention, no CoordConv): the default layout (FAN's
    block, one stem block) is within 2 %; Newell's bottleneck layout is about 0.57x."""
    def size(m: torch.nn.Module) -> float:
        return sum(p.numel() for p in m.parameters()) * 4 / 2 ** 20

    kw = dict(num_points=68, input_size=256, stacks=stacks, depth=depth, channels=channels,
              attention="none", coordconv=False)
    assert size(create_model("hourglass", **kw)) == pytest.approx(mb, rel=0.02)
    old = create_model("hourglass", block="bottleneck", stem_blocks=2, **kw)
    assert size(old) == pytest.approx(0.57 * mb, rel=0.05)


def test_hourglass_reproduces_seed001_table2_attention_sizes() -> None:
    """Table 2: + SE 12.1 MB, + CA 12.2 MB, + CA and CoordConv 12.2 MB (2 stacks, depth 4, 128)."""
    def size(**kw: object) -> float:
        m = create_model("hourglass", num_points=68, input_size=256, **kw)
        return sum(p.numel() for p in m.parameters()) * 4 / 2 ** 20

    assert size(attention="se", coordconv=False) == pytest.approx(12.1, rel=0.01)
    assert size(attention="ca", coordconv=False) == pytest.approx(12.2, rel=0.01)
    assert size(attention="ca", coordconv=True) == pytest.approx(12.2, rel=0.01)


def test_tiny_hourglass_overfits_two_synthetic_images() -> None:
    torch.manual_seed(0)
    n, k = 32, 3
    imgs = torch.zeros(2, 3, n, n)
    pts = torch.tensor([[[0.3, 0.3], [0.7, 0.4], [0.5, 0.75]],
                        [[0.6, 0.25], [0.25, 0.6], [0.7, 0.7]]])
    for b in range(2):  # a bright 3x3 square at each landmark, one colour channel per landmark
        for j, (x, y) in enumerate(pts[b].tolist()):
            u, v = int(x * n), int(y * n)
            imgs[b, j, v - 1:v + 2, u - 1:u + 2] = 1.0
    model = create_model("hourglass", num_points=k, input_size=n, stacks=1, depth=1, channels=16,
                         attention="se").train()
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    losses = []
    for _ in range(30):
        loss = model.loss(model(imgs), pts)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], losses


def test_unet_softmax_heatmaps_and_losses() -> None:
    torch.manual_seed(0)
    model = create_model("unet_softmax", num_points=4, input_size=32, base_width=4, depth=2)
    assert model.loss_kind == "mse_sum"  # seed 004's loss is the default
    out = model(torch.rand(2, 3, 32, 32))
    assert out["heatmaps"].shape == (2, 4, 32, 32) and out["logits"].shape == (2, 4, 32, 32)
    torch.testing.assert_close(out["heatmaps"].sum((2, 3)), torch.ones(2, 4))
    target = torch.rand(2, 4, 2) * 0.6 + 0.2
    t = SoftmaxHeatmap(32, 0.05).encode(target)
    # the seed's loss: torch's MSELoss(reduction="sum") between the softmax maps and the targets
    torch.testing.assert_close(model.loss(out, target),
                               torch.nn.MSELoss(reduction="sum")(out["heatmaps"], t))
    model.loss_kind = "cross_entropy"
    ce = -(t * torch.log_softmax(out["logits"].flatten(2), -1).view_as(t)).sum((2, 3)).mean()
    torch.testing.assert_close(model.loss(out, target), ce)
    grey = create_model("unet_softmax", num_points=4, input_size=32, base_width=4, depth=2,
                        grayscale=True)
    assert grey.down[0][0].in_channels == 1
    with pytest.raises(ValueError, match="unknown loss"):
        create_model("unet_softmax", input_size=32, depth=2, base_width=4, loss="l2")
    # the cross-entropy is minimal (= the target entropy) when the logits are log(target)
    lo = softmax_cross_entropy(torch.log(t.clamp_min(1e-30)), t)
    entropy = -(t * torch.log(t.clamp_min(1e-30))).sum((2, 3)).mean()
    torch.testing.assert_close(lo, entropy)
    with pytest.raises(ValueError, match="multiple"):
        create_model("unet_softmax", input_size=30, depth=2, base_width=4)


def _shapes(model: torch.nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    """Output shapes of every layer of ``model.features`` (torchsummary's column)."""
    out = []
    for m in model.features:
        x = m(x)
        out.append(tuple(x.shape[1:]))
    return out


def test_imm_nose_cnn_is_the_seed_table() -> None:
    """Seed 004 Part 1's torchsummary table: shapes and parameter counts, layer by layer."""
    nose = create_model("imm_nose_cnn")
    assert nose.num_points == 1 and nose.input_size == 80 and nose.input_hw == (80, 60)
    assert _shapes(nose, torch.zeros(1, 1, 80, 60)) == [
        (12, 74, 54), (12, 74, 54), (12, 37, 27), (24, 33, 23), (24, 33, 23), (24, 16, 11),
        (32, 14, 9), (32, 14, 9), (32, 7, 4)]
    params = [sum(p.numel() for p in m.parameters()) for m in [*nose.features, *nose.fc]]
    assert [p for p in params if p] == [600, 7224, 6944, 114816, 258]
    assert sum(p.numel() for p in nose.parameters()) == 129_842
    # the square face crop is resized to the 80 x 60 grid inside the model
    assert nose(torch.rand(2, 3, 80, 80))["coords"].shape == (2, 1, 2)
    with pytest.raises(ValueError, match="expected input"):
        nose(torch.rand(2, 3, 80, 60))


def test_imm_face_cnn_is_the_seed_table() -> None:
    """Seed 004 Part 2's table: 180 x 240 grey input, six padded 3x3 convs, FC 3072->2048->116."""
    face = create_model("imm_face_cnn")
    assert face.num_points == 58 and face.input_hw == (180, 240)
    shapes = _shapes(face, torch.zeros(1, 1, 180, 240))
    assert shapes[::3] == [(32, 180, 240), (64, 90, 120), (128, 45, 60), (256, 22, 30),
                           (512, 11, 15), (512, 5, 7)]
    assert shapes[-1] == (512, 2, 3) and face.fc[1].in_features == 3072
    params = [sum(p.numel() for p in m.parameters()) for m in [*face.features, *face.fc]]
    assert [p for p in params if p] == [320, 18496, 73856, 295168, 1180160, 2359808, 6293504,
                                        237684]
    assert sum(p.numel() for p in face.parameters()) == 10_458_996


def test_imm_cnn_options() -> None:
    # the compact layout of the shipped faceland-imm58-cnn-128 stays buildable by its card
    compact = create_model("imm_face_cnn", input_size=128, channels=(16, 32, 32, 64, 64, 128),
                           kernels=(5, 5, 3, 3, 3, 3), pools=(True,) * 5 + (False,),
                           hidden=256, input_hw=None)
    assert sum(p.numel() for p in compact.parameters()) == 706_132
    with pytest.raises(ValueError, match="too small"):
        create_model("imm_nose_cnn", input_hw=(12, 12))
    with pytest.raises(ValueError, match="padding"):
        create_model("imm_nose_cnn", padding="full")
    rgb = create_model("imm_nose_cnn", grayscale=False, channels=(4, 4, 4), hidden=8)
    assert rgb.features[0].in_channels == 3
    for loss in ("l1", "wing"):
        m = create_model("imm_nose_cnn", loss=loss, channels=(4, 4, 4), hidden=8)
        assert float(m.loss(m(torch.rand(1, 3, 80, 80)), torch.full((1, 1, 2), 0.3)).detach()) > 0
    with pytest.raises(ValueError, match="unknown loss"):
        create_model("imm_nose_cnn", loss="huber")


def test_seed004_resnet50_regression_part3() -> None:
    """Seed 004 Part 3: ResNet-50, a 1-channel first convolution, 136 outputs."""
    m = create_model("regression", backbone="resnet50", num_points=68, input_size=64,
                     grayscale=True, loss="mse")
    assert m.backbone.body.conv1.in_channels == 1 and m.fc.out_features == 136
    # torchvision's ResNet-50 (25,557,032) with conv1 1-channel and a 2048 -> 136 linear layer
    assert sum(p.numel() for p in m.parameters()) == 25_557_032 - 2 * 64 * 49 - 2_049_000 + 278_664
    assert m(torch.rand(1, 3, 64, 64))["coords"].shape == (1, 68, 2)


# ------------------------------------------------------------------ configs and schedule


@pytest.mark.parametrize("name", ["hourglass_seed001", "hourglass_cpu", "unet_seed004_imm",
                                  "unet_imm_cpu", "imm_nose", "imm_face"])
def test_configs_load_and_build(name: str) -> None:
    from faceland.schemes import get_scheme
    from faceland.training import load_config

    cfg = load_config(CONFIGS / f"{name}.yaml")
    num_points = get_scheme(cfg.scheme).num_points
    kw = dict(cfg.model_args)
    if cfg.model == "unet_softmax":
        kw["base_width"] = 4  # the architecture, not its cost, is checked here
    if cfg.model == "hourglass":
        kw["channels"] = 8
    model = create_model(cfg.model, num_points=num_points, input_size=cfg.input_size, **kw)
    assert model.num_points == num_points


def _lr_factors(cfg, steps_per_epoch: int, at: list[int]) -> list[float]:
    from faceland.training import LandmarkModule

    module = LandmarkModule(create_model("imm_nose_cnn", channels=(2, 2, 2), hidden=2), cfg)
    module.trainer = SimpleNamespace(estimated_stepping_batches=cfg.epochs * steps_per_epoch,
                                     callbacks=[])
    sched = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    return [sched.lr_lambdas[0](s) for s in at]


def test_seed001_step_schedule_in_steps() -> None:
    from faceland.training import load_config

    cfg = load_config(CONFIGS / "hourglass_seed001.yaml")
    f = _lr_factors(cfg, 113, [0, 999, 1999, 2000, 79999, 80000, 119999, 120000, 150000])
    lrs = [cfg.lr * v for v in f]
    assert lrs[0] == pytest.approx(1e-4 / 2000) and lrs[1] == pytest.approx(0.5e-4)
    assert lrs[2:5] == pytest.approx([1e-4] * 3)
    assert lrs[5:7] == pytest.approx([5e-5] * 2)
    assert lrs[7:] == pytest.approx([2e-5] * 2)
    cfg.milestone_unit = "epoch"
    cfg.milestones = [2, 3]
    f = _lr_factors(cfg, 1000, [2999, 3000, 3999])
    assert f == pytest.approx([0.5, 0.2, 0.2])  # warm-up over, milestone 3 at step 3000
    cfg.milestone_unit = "minute"
    with pytest.raises(ValueError, match="milestone_unit"):
        _lr_factors(cfg, 10, [0])
    cfg.milestone_unit, cfg.gamma = "step", [0.5]
    with pytest.raises(ValueError, match="gamma"):
        _lr_factors(cfg, 10, [0])


def test_fraction_milestones_follow_epochs_or_the_time_budget() -> None:
    from faceland.training import LandmarkModule, TrainConfig

    cfg = TrainConfig(epochs=10, schedule="step", milestone_unit="fraction",
                      milestones=[0.5, 0.75], gamma=0.2, warmup_epochs=0, max_time_minutes=60)
    module = LandmarkModule(create_model("imm_nose_cnn", channels=(2, 2, 2), hidden=2), cfg)
    module.trainer = SimpleNamespace(estimated_stepping_batches=1000, callbacks=[])
    f = module.configure_optimizers()["lr_scheduler"]["scheduler"].lr_lambdas[0]
    module._elapsed_minutes = lambda: 0.0  # epochs end first: decays at steps 500 and 750
    assert [f(s) for s in (499, 500, 749, 750)] == pytest.approx([1, 0.2, 0.2, 0.04])
    module._elapsed_minutes = lambda: 31.0  # past half of the 60-min budget at step 10
    assert f(10) == pytest.approx(0.2)
    module._elapsed_minutes = lambda: 45.0
    assert f(10) == pytest.approx(0.04)


# ------------------------------------------------------------------ scheme "1" (IMM nose tip)


def test_nose_tip_scheme() -> None:
    from faceland.schemes import IMM_NOSE_TIP, get_scheme

    s = get_scheme("1")
    assert s.num_points == 1 and s.parent == "58" and s.indices == (IMM_NOSE_TIP,) == (52,)
    assert get_scheme("58").flip_permutation[52] == 52  # on the symmetry axis
    pts = np.arange(58 * 2, dtype=float).reshape(58, 2)
    assert s.select(pts).tolist() == [pts[52].tolist()]
    assert get_scheme("58").select(pts) is pts


@pytest.mark.slow
def test_nose_tip_crops_on_real_imm(data_root) -> None:
    from faceland.data.crops import CropDataset
    from faceland.data.datasets import load_imm
    from faceland.geometry import apply_affine, crop_to_normalized
    from faceland.schemes import get_scheme
    from faceland.transforms import AugmentConfig, TrainAugment

    recs = load_imm(data_root / "imm")[:3]
    nose = CropDataset(recs, get_scheme("1"), 64)
    full = CropDataset(recs, get_scheme("58"), 64)
    for i in range(3):
        a, b = nose[i], full[i]
        assert a["target"].shape == (1, 2)
        torch.testing.assert_close(a["target"][0], b["target"][52])  # same crop (box of all 58)
        assert torch.equal(a["image"], b["image"])
        # the nose tip is the lowest point of the central nose path 47..57 (within a pixel)
        assert float(b["target"][47:58, 1].max() - a["target"][0, 1]) * 64 < 1.0
    aug = TrainAugment(AugmentConfig(rotation=0, scale=(1, 1), shift=0, flip=1.0, color_jitter=0,
                                     blur=0, erase=0, grayscale=0), seed=0)
    flipped = CropDataset(recs, get_scheme("1"), 64, augment=aug)[0]
    x = apply_affine(recs[0].points[52:53], flipped["affine"].numpy())
    assert flipped["target"].numpy() == pytest.approx(crop_to_normalized(x, 64), abs=1e-5)
    assert math.isfinite(float(flipped["target"].sum()))
