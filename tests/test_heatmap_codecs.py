"""Heatmap codecs and decoders: hand cases, exact round trips, randomized rounding, real 300W."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from faceland.codecs import (
    DECODERS,
    GaussianHeatmap,
    RandomizedRoundingHeatmap,
    SoftmaxHeatmap,
    decode_heatmaps,
    peak_mass,
    soft_argmax,
)

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "codec_roundtrip.py"


def _points(b: int = 2, k: int = 6, seed: int = 0, lo: float = 0.1, hi: float = 0.9) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, k, 2, generator=g, dtype=torch.float64) * (hi - lo) + lo


def _pixel(c: torch.Tensor, size: int) -> torch.Tensor:
    return c * size - 0.5


# ------------------------------------------------------------------ GaussianHeatmap


def test_plain_gaussian_values_on_rounded_position() -> None:
    codec = GaussianHeatmap((20, 16), sigma=1.75, kernel_size=7)
    # x pixel 7.3 -> column 7, y pixel 4.6 -> row 5
    c = torch.tensor([[[(7.3 + 0.5) / 20, (4.6 + 0.5) / 16]]])
    hm = codec.encode(c)
    assert hm.shape == (1, 1, 16, 20)
    m = hm[0, 0]
    assert float(m[5, 7]) == 1.0 and float(m.max()) == 1.0
    assert int((m > 0).sum()) == 49  # the 7x7 support, fully inside
    assert float(m[5, 8]) == pytest.approx(math.exp(-1 / (2 * 1.75 ** 2)), rel=1e-6)
    assert float(m[5, 10]) > 0 and float(m[5, 11]) == 0 and float(m[2, 7]) > 0 and float(m[1, 7]) == 0


def test_offset_gaussian_is_evaluated_at_the_true_position() -> None:
    s = 1.75
    codec = GaussianHeatmap(16, sigma=s, kernel_size=7, offset=True)
    px, py = 6.3, 9.45  # rounded: (6, 9)
    hm = codec.encode(torch.tensor([[[(px + 0.5) / 16, (py + 0.5) / 16]]], dtype=torch.float64))[0, 0]
    assert float(hm[9, 6]) == pytest.approx(1.0) and float(hm.max()) == pytest.approx(1.0)
    for i, j in [(9, 7), (9, 5), (11, 9), (6, 3), (12, 8)]:
        d2 = (j - px) ** 2 + (i - py) ** 2 - ((6 - px) ** 2 + (9 - py) ** 2)
        assert float(hm[i, j]) == pytest.approx(math.exp(-d2 / (2 * s * s)), rel=1e-9)
    assert int((hm > 0).sum()) == 49 and float(hm[9, 10]) == 0.0


@pytest.mark.parametrize("size", [(64, 64), (48, 32)])
def test_offset_gaussian_subpixel_round_trip_is_exact(size) -> None:
    codec = GaussianHeatmap(size, sigma=1.75, kernel_size=7, offset=True)
    assert codec.decoder == "subpixel"
    c = _points(3, 20, lo=0.06, hi=0.94)
    coords, scores = codec.decode(codec.encode(c))
    err_px = ((coords - c) * torch.tensor(size, dtype=c.dtype)).abs()
    assert float(err_px.max()) < 1e-6
    torch.testing.assert_close(scores, torch.ones_like(scores))
    # in float32 too
    coords32, _ = codec.decode(codec.encode(c.float()))
    assert float(((coords32 - c.float()) * size[0]).abs().max()) < 1e-3


def test_plain_gaussian_argmax_has_the_quantisation_error() -> None:
    codec = GaussianHeatmap(64)
    c = _points(4, 50)
    coords, _ = codec.decode(codec.encode(c))
    err = ((coords - c) * 64).abs()
    assert float(err.max()) <= 0.5 + 1e-6
    assert 0.2 < float(err.mean()) < 0.3  # uniform quantisation error: mean 0.25 px per axis
    # decoding the plain map can't do better: it is symmetric around the integer position
    for method in ("argmax_shift", "subpixel"):
        torch.testing.assert_close(codec.decode(codec.encode(c), method)[0], coords)


def test_missing_and_outside_points_give_empty_maps() -> None:
    c = torch.tensor([[[float("nan"), 0.5], [0.5, 0.5], [2.0, 0.5], [-0.02, 0.5]]])
    for codec in (GaussianHeatmap(16), GaussianHeatmap(16, offset=True),
                  RandomizedRoundingHeatmap(16, generator=torch.Generator().manual_seed(0)),
                  SoftmaxHeatmap(16)):
        hm = codec.encode(c)
        assert torch.isfinite(hm).all()
        assert float(hm[0, 0].abs().sum()) == 0.0  # missing landmark
        assert float(hm[0, 1].sum()) > 0
    g = GaussianHeatmap(16).encode(c)
    assert float(g[0, 2].sum()) == 0.0  # wholly outside: no cell within the support
    assert float(g[0, 3].sum()) > 0  # just outside the left edge: the kernel is cut
    assert float(SoftmaxHeatmap(16).encode(c)[0, 2].sum()) == pytest.approx(1.0)


def test_codec_argument_errors() -> None:
    with pytest.raises(ValueError, match="odd"):
        GaussianHeatmap(64, kernel_size=6)
    with pytest.raises(ValueError, match="sigma"):
        GaussianHeatmap(64, sigma=0)
    with pytest.raises(ValueError, match="positive"):
        GaussianHeatmap((0, 4))
    with pytest.raises(ValueError, match="decoder"):
        GaussianHeatmap(64, decoder="dark")
    with pytest.raises(ValueError, match="kernel"):
        RandomizedRoundingHeatmap(64, kernel="box")
    with pytest.raises(ValueError, match=r"\(B, K, 2\)"):
        GaussianHeatmap(64).encode(torch.rand(5, 2))
    with pytest.raises(ValueError, match=r"\(B, K, H, W\)"):
        decode_heatmaps(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="unknown heatmap decoder"):
        decode_heatmaps(torch.rand(1, 1, 8, 8), "median")


# ------------------------------------------------------------------ decoders


def _one_map(h: int, w: int, cells: dict[tuple[int, int], float]) -> torch.Tensor:
    m = torch.zeros(1, 1, h, w)
    for (i, j), v in cells.items():
        m[0, 0, i, j] = v
    return m


def test_argmax_and_scores() -> None:
    m = _one_map(8, 10, {(3, 6): 2.5, (1, 1): 1.0})
    coords, scores = decode_heatmaps(m, "argmax")
    assert coords[0, 0].tolist() == pytest.approx([6.5 / 10, 3.5 / 8])
    assert float(scores[0, 0]) == 2.5


def test_argmax_shift_quarter_pixel_towards_higher_neighbour() -> None:
    m = _one_map(8, 8, {(4, 4): 1.0, (4, 5): 0.6, (4, 3): 0.2, (3, 4): 0.3, (5, 4): 0.3})
    coords, _ = decode_heatmaps(m, "argmax_shift")
    # x: right neighbour higher -> +0.25 px; y: equal neighbours -> no shift
    assert coords[0, 0].tolist() == pytest.approx([(4.25 + 0.5) / 8, (4 + 0.5) / 8])
    m = _one_map(8, 8, {(2, 3): 1.0, (1, 3): 0.9, (2, 2): 0.5})
    coords, _ = decode_heatmaps(m, "argmax_shift")
    assert coords[0, 0].tolist() == pytest.approx([(2.75 + 0.5) / 8, (1.75 + 0.5) / 8])
    # on the border an axis is not shifted
    m = _one_map(8, 8, {(0, 7): 1.0, (1, 7): 0.5, (0, 6): 0.9})
    coords, _ = decode_heatmaps(m, "argmax_shift")
    assert coords[0, 0].tolist() == pytest.approx([(7 + 0.5) / 8, (0 + 0.5) / 8])


def test_subpixel_fits_a_gaussian_of_any_sigma_and_handles_flat_maps() -> None:
    for sigma in (0.8, 1.75, 3.0):
        codec = GaussianHeatmap(32, sigma=sigma, kernel_size=7, offset=True)
        c = _points(1, 8, seed=3)
        coords, _ = decode_heatmaps(codec.encode(c), "subpixel")
        assert float(((coords - c) * 32).abs().max()) < 1e-6
    flat = torch.zeros(1, 2, 6, 6)
    coords, _ = decode_heatmaps(flat, "subpixel")
    assert coords[0, 0].tolist() == pytest.approx([0.5 / 6, 0.5 / 6])  # argmax cell, no shift


def test_local_mean_hand_case() -> None:
    m = _one_map(6, 6, {(2, 2): 3.0, (2, 3): 1.0, (0, 0): 2.0, (5, 5): 2.9})
    coords, _ = decode_heatmaps(m, "local_mean", window=3)
    # weights 3 at x=2 and 1 at x=3 (the far cells are outside the 3x3 window of (2, 2))
    assert coords[0, 0].tolist() == pytest.approx([(2.25 + 0.5) / 6, 2.5 / 6])
    with pytest.raises(ValueError, match="window"):
        decode_heatmaps(m, "local_mean", window=2)


def test_soft_argmax_decoder_density_and_logit_modes() -> None:
    m = _one_map(4, 4, {(1, 1): 1.0, (1, 3): 3.0, (0, 0): -5.0})
    coords, _ = decode_heatmaps(m, "soft_argmax")  # negative cells clamped, normalised by sum
    assert coords[0, 0].tolist() == pytest.approx([(1.5 + 3 * 3.5) / 4 / 4, 1.5 / 4])
    coords, _ = decode_heatmaps(torch.zeros(1, 1, 4, 4), "soft_argmax")
    assert coords[0, 0].tolist() == pytest.approx([0.5, 0.5])
    logits = torch.randn(2, 3, 5, 7)
    coords, _ = decode_heatmaps(logits, "soft_argmax", beta=2.0)
    torch.testing.assert_close(coords, soft_argmax(logits, 2.0)[0])


@pytest.mark.parametrize("method", DECODERS)
def test_every_decoder_returns_normalised_coords_and_max_scores(method: str) -> None:
    torch.manual_seed(0)
    hm = torch.rand(2, 3, 12, 9)
    coords, scores = decode_heatmaps(hm, method)
    assert coords.shape == (2, 3, 2) and scores.shape == (2, 3)
    assert float(coords.min()) >= 0 and float(coords.max()) <= 1
    torch.testing.assert_close(scores, hm.flatten(2).max(-1).values)


# ------------------------------------------------------------------ randomized rounding


def test_randomized_rounding_draws_floor_or_ceil_with_fractional_probability() -> None:
    codec = RandomizedRoundingHeatmap(16, generator=torch.Generator().manual_seed(0))
    px = torch.tensor([3.3, 7.8, 10.0, 5.5])
    c = torch.stack([(px + 0.5) / 16, (px + 0.5) / 16], -1).unsqueeze(0)  # (1, 4, 2)
    q = torch.stack([codec.round(c) for _ in range(4000)])  # (4000, 1, 4, 2)
    for k, p in enumerate(px.tolist()):
        vals = set(q[:, 0, k].flatten().tolist())
        assert vals <= {math.floor(p), math.floor(p) + 1}
        frac_up = float((q[:, 0, k] == math.floor(p) + 1).double().mean())
        assert frac_up == pytest.approx(p - math.floor(p), abs=0.03)


def test_randomized_rounding_is_reproducible_with_a_generator() -> None:
    c = _points(2, 10)
    a = RandomizedRoundingHeatmap(32, generator=torch.Generator().manual_seed(7)).encode(c)
    b = RandomizedRoundingHeatmap(32, generator=torch.Generator().manual_seed(7)).encode(c)
    codec = RandomizedRoundingHeatmap(32)
    d = codec.encode(c, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and torch.equal(a, d)
    e = RandomizedRoundingHeatmap(32, generator=torch.Generator().manual_seed(8)).encode(c)
    assert not torch.equal(a, e)


@pytest.mark.parametrize("kernel", ["gaussian", "onehot"])
def test_randomized_rounding_mean_of_argmax_decodes_is_unbiased(kernel: str) -> None:
    size, draws = 16, 3000
    codec = RandomizedRoundingHeatmap(size, sigma=1.0, kernel=kernel,
                                      generator=torch.Generator().manual_seed(1))
    c = _points(1, 8, seed=5, lo=0.15, hi=0.85)
    acc = torch.zeros_like(c)
    hm_acc = 0
    for _ in range(draws):
        hm = codec.encode(c)
        acc += codec.decode(hm, "argmax")[0]
        hm_acc = hm_acc + hm
    single = (codec.decode(codec.encode(c), "argmax")[0] - c) * size
    mean_err = ((acc / draws - c) * size).abs()
    assert float(mean_err.max()) < 0.05  # Monte-Carlo error ~ 0.5 / sqrt(3000) = 0.009 px
    assert float(single.abs().max()) > 0.1  # one draw alone is not sub-pixel
    # the expected map (average of draws) is decoded by the local mean (the codec's default)
    coords, _ = codec.decode(hm_acc / draws)
    assert float(((coords - c) * size).abs().max()) < 0.05


# ------------------------------------------------------------------ SoftmaxHeatmap


def test_softmax_heatmap_sums_to_one_and_decodes() -> None:
    codec = SoftmaxHeatmap((40, 30), sigma=0.05)
    c = _points(2, 7, lo=0.25, hi=0.75)
    hm = codec.encode(c)
    assert hm.shape == (2, 7, 30, 40)
    torch.testing.assert_close(hm.sum((2, 3)), torch.ones(2, 7, dtype=hm.dtype))
    assert float(hm.min()) >= 0
    coords, _ = codec.decode(hm)  # soft-argmax of a density
    assert float((coords - c).abs().max()) < 1e-3
    # the Gaussian is isotropic in normalised units: sigma * W cells in x, sigma * H in y
    one = codec.encode(torch.tensor([[[20.5 / 40, 15.5 / 30]]], dtype=torch.float64))[0, 0]
    ratio = float(one[15, 21] / one[15, 20])
    assert ratio == pytest.approx(math.exp(-(1 / 40) ** 2 / (2 * 0.05 ** 2)), rel=1e-9)


# ------------------------------------------------------------------ real data


def _roundtrip_module():
    spec = importlib.util.spec_from_file_location("codec_roundtrip", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_codec_round_trip_nme_on_real_300w_common(data_root) -> None:
    rt = _roundtrip_module()
    pts = rt.normalized_common_points(data_root)
    assert pts.shape == (554, 68, 2)
    rows = {r["key"]: r for r in rt.codec_roundtrip_nme(
        data_root, points=pts, keys=["gaussian:argmax", "offset:argmax", "offset:subpixel",
                                     "softmax:soft_argmax"])}
    plain, offset = rows["gaussian:argmax"]["nme"], rows["offset:subpixel"]["nme"]
    # Seed 001 Table 3: 0.5127 % (plain) vs 0.0076 % (offset); the floor depends on face size.
    assert plain > 0.2  # the quantisation floor of integer heatmap positions
    assert rows["gaussian:argmax"]["max_px"] == pytest.approx(0.5, abs=0.01)
    assert offset < 0.01 and offset < plain / 50
    assert rows["offset:argmax"]["nme"] == pytest.approx(plain, rel=1e-6)  # argmax drops the offset
    assert rows["softmax:soft_argmax"]["nme"] < plain / 5
    # randomized rounding: one draw is worse than rounding, the mean of draws tends to the truth
    few = {r["key"]: r["nme"] for r in rt.codec_roundtrip_nme(
        data_root, points=pts[:64], draws=2, keys=["rr:argmax", "rr-mean:argmax"])}
    many = rt.codec_roundtrip_nme(data_root, points=pts[:64], draws=32, keys=["rr-mean:argmax"])
    assert few["rr:argmax"] > few["rr-mean:argmax"] > many[0]["nme"]
    assert many[0]["nme"] < plain / 2


def test_subpixel_falls_back_to_quarter_shift_on_non_positive_neighbours() -> None:
    """On raw network outputs a neighbour <= 0 must not pin the log fit at +-0.5."""
    from faceland.codecs import decode_heatmaps

    hm = torch.zeros(1, 1, 1, 8)
    hm[0, 0, 0, 2:5] = torch.tensor([0.8, 1.0, -0.01])
    sub, _ = decode_heatmaps(hm, "subpixel")
    shift, _ = decode_heatmaps(hm, "argmax_shift")
    assert torch.allclose(sub[..., 0], shift[..., 0])
    assert float(sub[0, 0, 0]) == pytest.approx((3 - 0.25 + 0.5) / 8)


def test_codec_config_builds_each_kind_and_models_take_it() -> None:
    """Codecs chosen by a typed sub-config (a kind name, a dict of fields or a CodecConfig)."""
    from faceland.codecs import (
        CodecConfig,
        GaussianHeatmap,
        RandomizedRoundingHeatmap,
        SoftmaxHeatmap,
    )
    from faceland.models import create_model

    g = CodecConfig("offset_gaussian", 1.75, 7).build(16)
    assert isinstance(g, GaussianHeatmap) and g.offset and g.decoder == "subpixel"
    assert CodecConfig("gaussian", 1.75).build(16).decoder == "argmax_shift"
    rr = CodecConfig.coerce({"kind": "randomized_rounding", "decoder": "argmax"}, sigma=1.5)
    assert isinstance(rr.build(16), RandomizedRoundingHeatmap) and rr.build(16).decoder == "argmax"
    assert isinstance(CodecConfig.coerce("softmax", sigma=0.05).build(32), SoftmaxHeatmap)
    with pytest.raises(ValueError, match="unknown codec"):
        CodecConfig("laplace", 1.0)
    with pytest.raises(ValueError, match="unknown codec field"):
        CodecConfig.coerce({"kind": "gaussian", "size": 3}, sigma=1.0)
    with pytest.raises(ValueError, match="needs a kind"):
        CodecConfig.coerce({"sigma": 2.0})
    # a model takes any of the three forms; the saved config holds plain JSON
    m = create_model("hourglass", num_points=3, input_size=64, stacks=1, depth=2, channels=16,
                     codec=CodecConfig("gaussian", 1.5, 5, "argmax"))
    assert m.codec.decoder == "argmax" and not m.codec.offset
    assert m.config["codec"] == {"kind": "gaussian", "sigma": 1.5, "kernel_size": 5,
                                 "decoder": "argmax"}
    m2 = create_model("hourglass", num_points=3, input_size=64, stacks=1, depth=2, channels=16,
                      codec=m.config["codec"])
    assert m2.codec_config == m.codec_config
    iact = create_model("iact", num_points=3, input_size=64, widths=(8, 16, 16, 32),
                        heads=(1, 2, 2), codec={"kind": "gaussian", "decoder": "subpixel"})
    assert isinstance(iact.codec, GaussianHeatmap) and iact.decoder == "subpixel"
    with pytest.raises(ValueError, match="softmax codec"):
        create_model("unet_softmax", input_size=32, depth=2, base_width=4, codec="gaussian")


def test_peak_mass_known_values() -> None:
    p = torch.zeros(1, 2, 8, 8)
    p[0, 0, 3, 4] = 1.0  # a delta: all mass in any 3x3 window around it
    p[0, 1] = 1.0 / 64  # uniform: 9 of 64 cells
    s = peak_mass(p)
    assert s[0, 0].item() == pytest.approx(1.0)
    assert s[0, 1].item() == pytest.approx(9 / 64)
