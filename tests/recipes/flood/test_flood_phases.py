"""Phases of the flood recipe: the seed's discriminator update order, the losses table's
formulas, exact compositing, hidden masked pixels, log levels."""

import contextlib

import pytest
import torch
import torch.nn.functional as F

from geogan.losses.adversarial import get_adversarial
from geogan.recipes.config import run_config_from_dict
from geogan.recipes.flood.build import build_models, model_kwargs
from geogan.recipes.flood.phases import (
    DiscriminatorPhase,
    MaskerPhase,
    PainterPhase,
    classifier_loss,
    compose,
    discriminator_terms,
    paint,
    task_loss,
)
from geogan.training.phases import StepContext

DOMAINS = ["rf", "rn", "sf", "sn"]


def _cfg(**model):
    base = {
        "tasks": ["s", "w", "h"],
        "encoder": {"dim": 4, "n_downsample": 2, "n_res": 1},
        "decoder": {"n_res": 0},
        "classifier": {"filters": 4},
        "painter": {"spade_hidden": 4},
        "discriminator": {"filters": 4, "n_layers": 2},
    }
    base.update(model)
    return run_config_from_dict({"recipe": "flood", "data": {"tile_size": 16}, "model": base})


def _batch(b=2, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for d in DOMAINS:
        w = torch.zeros(b, size, size, dtype=torch.long)
        if d[1] == "f":
            w[:, :, : size // 2] = 1
        item = {
            "x": torch.rand(b, 3, size, size, generator=g) * 2 - 1,
            "s": torch.randint(0, 17, (b, size, size), generator=g),
            "w": w,
        }
        if d[0] == "s":
            item["h"] = torch.randn(b, 1, size, size, generator=g)
        out[d] = item
    return out


def _ctx(models, stage="s"):
    return StepContext(
        step=0,
        repeat=0,
        rank=0,
        seed=0,
        device=torch.device("cpu"),
        autocast=contextlib.nullcontext,
        models=models,
        stage=stage,
    )


@pytest.fixture(scope="module")
def setup():
    cfg = _cfg()
    torch.manual_seed(0)
    return cfg, build_models(model_kwargs(cfg, DOMAINS))


def test_discriminator_updates_follow_the_seed_table(setup):
    cfg, models = setup
    phase = DiscriminatorPhase(
        losses=cfg.train.losses,
        ignore_index=255,
        mask_dilate=1,
        active={"s": ["a", "t"]},
        noise_channels=0,
        log_level=0,
    )
    loss, _ = phase.loss(_batch(), _ctx(models))
    assert torch.isfinite(loss)
    # omnigan README, "updates": per batch real/fake D[a][r|s] then real/fake D[t][f|n]
    expected = [
        ("real", "disc_a_r", "rf"),
        ("fake", "disc_a_s", "rf"),
        ("real", "disc_t_f", "rf"),
        ("fake", "disc_t_n", "rf"),
        ("real", "disc_a_r", "rn"),
        ("fake", "disc_a_s", "rn"),
        ("real", "disc_t_n", "rn"),
        ("fake", "disc_t_f", "rn"),
        ("real", "disc_a_s", "sf"),
        ("fake", "disc_a_r", "sf"),
        ("real", "disc_t_f", "sf"),
        ("fake", "disc_t_n", "sf"),
        ("real", "disc_a_s", "sn"),
        ("fake", "disc_a_r", "sn"),
        ("real", "disc_t_n", "sn"),
        ("fake", "disc_t_f", "sn"),
    ]
    assert phase.order == expected
    # only the adaptation half in a representation stage
    phase.active = {"rep": ("a",)}
    phase.loss(_batch(), _ctx(models, "rep"))
    assert [o for o in phase.order] == [e for e in expected if "_a_" in e[1]]


@pytest.mark.parametrize("kind", ["lsgan", "hinge", "logistic", "wgan"])
def test_discriminator_halves_sum_to_the_engine_loss(kind):
    real, fake = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    r, f = discriminator_terms(kind)
    torch.testing.assert_close(r(real) + f(fake), get_adversarial(kind).critic_loss(real, fake))


def test_task_losses_match_direct_formulas():
    logits = torch.randn(2, 5, 4, 4)
    target = torch.randint(0, 5, (2, 4, 4))
    target[0, 0, 0] = 255
    torch.testing.assert_close(
        task_loss("s", "ce", logits, target, 255), F.cross_entropy(logits, target, ignore_index=255)
    )
    logit = torch.randn(2, 1, 4, 4)
    w = torch.randint(0, 2, (2, 4, 4))
    w[1, 1, 1] = 255
    ok = w != 255
    ref = F.binary_cross_entropy_with_logits(logit[:, 0][ok], w[ok].float())
    torch.testing.assert_close(task_loss("w", "ce", logit, w, 255), ref)
    torch.testing.assert_close(
        task_loss("w", "l2", logit, w, 255), ((logit[:, 0].sigmoid() - w.float()) ** 2)[ok].mean()
    )
    h = torch.randn(2, 1, 4, 4)
    th = torch.randn(2, 1, 4, 4)
    th[0, 0, 0, 0] = float("nan")
    fin = torch.isfinite(th)
    torch.testing.assert_close(task_loss("h", "l1", h, th, 255), (h[fin] - th[fin]).abs().mean())
    assert task_loss("s", "ce", logits, torch.full((2, 4, 4), 255), 255) == 0


def test_classifier_loss_targets():
    logits = torch.zeros(3, 4)
    uniform = torch.full((3, 4), 0.25)
    torch.testing.assert_close(classifier_loss("ce", logits, uniform), torch.log(torch.tensor(4.0)))
    assert classifier_loss("l2", logits, uniform) == 0


def test_compose_is_exact_outside_the_mask_and_paint_hides_masked_pixels(setup):
    _, models = setup
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:10, 2:12] = 1
    painted, comp = paint(models, x, mask, 1.0)
    assert torch.equal(comp[:, :, mask[0, 0] == 0], x[:, :, mask[0, 0] == 0])
    torch.testing.assert_close(comp[:, :, mask[0, 0] == 1], painted[:, :, mask[0, 0] == 1])
    other = x.clone()
    other[:, :, 4:10, 2:12] = 0.7  # what is under the mask cannot change the painting
    torch.testing.assert_close(paint(models, other, mask, 1.0)[0], painted)
    assert torch.equal(compose(x, torch.ones_like(x), torch.zeros_like(mask)), x)


@pytest.mark.parametrize("level", [0, 1, 2])
def test_log_levels(setup, level):
    cfg, models = setup
    phase = MaskerPhase(
        tasks=["s", "w", "h"],
        losses=cfg.train.losses,
        ignore_index=255,
        adaptation=True,
        classifier="realism",
        log_level=level,
    )
    loss, parts = phase.loss(_batch(), _ctx(models))
    loss.backward()
    if level == 0:
        assert parts == {}
    elif level == 1:
        assert set(parts) == {"tasks", "classifier", "auto", "gan", "cycle"}
    else:
        assert {"tasks/s", "tasks/w", "tasks/h", "gan/a/rf", "cycle/a/sn", "auto/a/sf"} <= set(
            parts
        )
        total = sum(parts[k] for k in parts if k.startswith("tasks/"))
        torch.testing.assert_close(total, parts["tasks"])
    painter = PainterPhase(
        losses=cfg.train.losses,
        ignore_index=255,
        mask_dilate=1,
        unflood=True,
        noise_channels=0,
        log_level=level,
    )
    loss, parts = painter.loss(_batch(), _ctx(models))
    assert torch.isfinite(loss)
    if level == 2:
        assert {"auto/t/rf", "auto/t/rn", "gan/t/f/rn", "gan/t/n/rf"} <= set(parts)
