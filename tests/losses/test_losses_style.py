"""Style loss (geogan.losses.style): Gram matrices, VGG16 weights from local files in both
accepted layouts, one-line errors for wrong layouts, and the trained-encoder fallback."""

import pytest
import torch
from safetensors.torch import save_file

from geogan.core.errors import CheckpointError
from geogan.losses.style import (
    EncoderFeatures,
    StyleLoss,
    VGG16Features,
    gram_matrix,
    load_vgg16_weights,
    style_loss,
)
from geogan.models.unet import UNet


def test_gram_matrix_formula():
    f = torch.randn(2, 3, 4, 5)
    want = torch.einsum("bchw,bdhw->bcd", f, f) / (3 * 4 * 5)
    torch.testing.assert_close(gram_matrix(f), want)
    f3 = torch.randn(1, 2, 3, 4, 5)
    torch.testing.assert_close(gram_matrix(f3)[0], f3[0].flatten(1) @ f3[0].flatten(1).T / 120)


def test_style_loss_is_squared_frobenius_of_gram_difference():
    a, b = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    diff = gram_matrix(a) - gram_matrix(b)
    want = (diff**2).sum(dim=(1, 2)).mean()
    torch.testing.assert_close(style_loss([a], [b]), want)
    assert style_loss([a, a], [a, a]).item() == 0.0


def _vgg_state(seed=0):
    torch.manual_seed(seed)
    return {k: v.clone() for k, v in VGG16Features().state_dict().items()}


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_vgg16_weights_from_local_file(tmp_path, suffix):
    state = _vgg_state()
    # torchvision's file also holds deeper layers and the classifier: ignored
    full = {
        **state,
        "features.17.weight": torch.zeros(512, 256, 3, 3),
        "classifier.0.weight": torch.zeros(4, 4),
    }
    path = tmp_path / f"vgg16{suffix}"
    if suffix == ".pth":
        torch.save(full, path)
    else:
        save_file(full, str(path))
    vgg = VGG16Features(path)
    ref = VGG16Features()
    ref.load_state_dict(state)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(vgg(x)[0], ref(x)[0])
    assert vgg(x)[0].shape == (1, 256, 4, 4)
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training  # stays frozen


def test_vgg16_wrong_layout_is_one_line_error(tmp_path):
    bad = tmp_path / "resnet.safetensors"
    save_file({"conv1.weight": torch.zeros(64, 3, 7, 7)}, str(bad))
    with pytest.raises(CheckpointError, match="not torchvision's VGG16 layout") as info:
        load_vgg16_weights(bad)
    assert "\n" not in str(info.value)
    state = _vgg_state()
    state["features.10.weight"] = torch.zeros(256, 64, 3, 3)
    wrong = tmp_path / "vgg19ish.safetensors"
    save_file(state, str(wrong))
    with pytest.raises(CheckpointError, match="expected \\[256, 128, 3, 3\\]"):
        load_vgg16_weights(wrong)
    with pytest.raises(CheckpointError, match="not found"):
        load_vgg16_weights(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_vgg16_weights(junk)


def test_style_loss_with_trained_encoder_fallback():
    torch.manual_seed(1)
    seg = UNet(in_channels=3, out_channels=4, filters=4, depth=3, output_activation="none")
    loss = StyleLoss(EncoderFeatures(seg, levels=(1, 2)))
    a = torch.rand(2, 3, 16, 16, requires_grad=True)
    b = torch.rand(2, 3, 16, 16)
    value = loss(a, b)
    feats_a, feats_b = seg.encode(a)[1:3], seg.encode(b)[1:3]
    torch.testing.assert_close(value, style_loss(feats_a, feats_b))
    value.backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    assert all(p.grad is None for p in seg.parameters())  # the feature net stays frozen
    assert loss(b, b).item() == 0.0
