"""pix2pix U-Net and PatchGAN (geogan.models.unet / patchgan): shapes in 2D and 3D, the
pix2pix parameter counts, a direct-formula check, inference dropout, export round trip."""

import pytest
import torch
import torch.nn.functional as F

from geogan.core.checkpoint import module_tensors, save_checkpoint
from geogan.core.errors import ConfigError, DataError
from geogan.core.modules import build_model, model_spec
from geogan.inference.export import load_export
from geogan.models.patchgan import PatchGAN
from geogan.models.unet import UNet


def _n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("dims", [2, 3])
def test_unet_shapes_and_gradients(dims):
    torch.manual_seed(0)
    net = UNet(dims=dims, in_channels=2, out_channels=5, filters=4, depth=3, dropout=0.5)
    x = torch.randn(2, 2, *(16,) * dims, requires_grad=True)
    y = net(x)
    assert y.shape == (2, 5, *(16,) * dims)
    assert y.abs().max() <= 1.0  # tanh
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    feats = net.encode(x.detach())
    assert [f.shape[1] for f in feats] == [4, 8, 16]
    assert [f.shape[2] for f in feats] == [8, 4, 2]


def test_unet_256_and_basic_patchgan_match_pix2pix_parameter_counts():
    # pix2pix prints 54.414 M (unet_256, batch norm, 3 -> 3) and 2.769 M (basic, 6 channels)
    g = UNet(in_channels=3, out_channels=3, filters=64, depth=8, norm="batch", dropout=0.5)
    d = PatchGAN(in_channels=3, cond_channels=3, filters=64, n_layers=3, norm="batch")
    assert _n_params(g) == 54_413_955
    assert _n_params(d) == 2_768_705
    assert d.patch_shape((256, 256)) == (30, 30)
    # three dropout layers, just outside the innermost level
    assert sum(type(m).__name__ == "InferenceDropout" for m in g.modules()) == 3


def test_unet_equals_direct_formula():
    """depth 2, no norm: out = tanh(convT0(relu(cat(a, convT1(relu(conv1(a))))))), a = lrelu(conv0(x))."""
    torch.manual_seed(1)
    net = UNet(in_channels=3, out_channels=2, filters=4, depth=2, norm="none", init_gain=0.1)
    x = torch.randn(1, 3, 8, 8)
    c0, c1 = net.first, net.downs[0][0]
    t1, t0 = net.ups[0][0], net.last
    a = F.leaky_relu(F.conv2d(x, c0.weight, c0.bias, stride=2, padding=1), 0.2)
    inner = F.conv2d(a, c1.weight, c1.bias, stride=2, padding=1)
    u = F.conv_transpose2d(F.relu(inner), t1.weight, t1.bias, stride=2, padding=1)
    want = torch.tanh(
        F.conv_transpose2d(F.relu(torch.cat([a, u], 1)), t0.weight, t0.bias, stride=2, padding=1)
    )
    torch.testing.assert_close(net(x), want)


def test_inference_dropout_is_the_noise_source():
    torch.manual_seed(2)
    x = torch.randn(1, 3, 32, 32)
    on = UNet(
        in_channels=3, out_channels=3, filters=4, depth=5, dropout=0.5, dropout_at_inference=True
    ).eval()
    off = build_model(
        {**model_spec(on), "kwargs": {**model_spec(on)["kwargs"], "dropout_at_inference": False}}
    ).eval()
    off.load_state_dict(on.state_dict())
    with torch.no_grad():
        a, b = on(x), on(x)
        assert not torch.allclose(a, b)  # two members of one input differ
        torch.manual_seed(5)
        c = on(x)
        torch.manual_seed(5)
        torch.testing.assert_close(on(x), c)  # reproducible from a seed
        torch.testing.assert_close(off(x), off(x))  # deterministic when switched off


def test_unet_checks():
    net = UNet(in_channels=3, out_channels=3, filters=4, depth=3)
    with pytest.raises(DataError, match="divisible by 8"):
        net(torch.randn(1, 3, 12, 12))
    with pytest.raises(DataError, match="expected"):
        net(torch.randn(1, 4, 16, 16))
    with pytest.raises(ConfigError):
        UNet(norm="layer")


@pytest.mark.parametrize("dims", [2, 3])
def test_patchgan_shapes_and_aux_head(dims):
    torch.manual_seed(3)
    size = (32,) * dims
    d = PatchGAN(
        dims=dims, in_channels=3, cond_channels=4, filters=4, n_layers=2, tail="same", aux_classes=5
    )
    img, cond = torch.randn(2, 3, *size), torch.randn(2, 4, *size)
    patches, logits = d(img, cond)
    assert patches.shape == (2, 1, *(8,) * dims) and d.patch_shape(size) == (8,) * dims
    assert logits.shape == (2, 5, *size)
    # the auxiliary head sees the image only: the condition cannot leak into it
    _, other = d(img, torch.randn(2, 4, *size))
    torch.testing.assert_close(logits, other)
    valid = PatchGAN(dims=dims, in_channels=3, cond_channels=0, filters=4, n_layers=2)
    assert valid(img).shape == (2, 1, *valid.patch_shape(size)) == (2, 1, *(6,) * dims)


def test_patchgan_first_layer_equals_conv_of_concatenation():
    """The aux head's image-only features are the trunk's first conv minus the cond part."""
    torch.manual_seed(4)
    d = PatchGAN(in_channels=3, cond_channels=2, filters=4, n_layers=1, aux_classes=2)
    img, cond = torch.randn(1, 3, 16, 16), torch.randn(1, 2, 16, 16)
    w = d.first.weight
    full = F.conv2d(torch.cat([img, cond], 1), w, d.first.bias, stride=2, padding=1)
    split = F.conv2d(img, w[:, :3], d.first.bias, stride=2, padding=1) + F.conv2d(
        cond, w[:, 3:], None, stride=2, padding=1
    )
    torch.testing.assert_close(full, split)
    torch.testing.assert_close(d.first(torch.cat([img, cond], 1)), full)


def test_export_round_trip(tmp_path):
    torch.manual_seed(6)
    models = {
        "generator": UNet(in_channels=4, out_channels=3, filters=4, depth=3),
        "critic": PatchGAN(in_channels=3, cond_channels=1, filters=4, aux_classes=2, tail="same"),
    }
    tensors = {}
    for name, m in models.items():
        tensors.update(module_tensors(name, m.eval()))
    meta = {
        "kind": "export",
        "format": "test/1",
        "models": {n: model_spec(m) for n, m in models.items()},
    }
    save_checkpoint(tmp_path / "m.safetensors", tensors, meta)
    loaded, _ = load_export(tmp_path / "m.safetensors", format_prefix="test")
    x = torch.randn(2, 4, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded["generator"](x), models["generator"](x))
        for a, b in zip(loaded["critic"](x[:, :3], x[:, 3:]), models["critic"](x[:, :3], x[:, 3:])):
            torch.testing.assert_close(a, b)
