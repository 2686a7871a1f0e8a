"""Training schedules of the engine: intervals and lazy weights, phase state, stages (phases,
freezing, LR factors), warm starts, EMA half-life, LR schedules, clipping, validation,
nested batches, compile, and exact resume with all of them at once."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch
from toy import GeneratorPhase, ToyDataset, _register, all_state, make_setup

from geogan.config.schema import LRScheduleConfig, TrainConfig
from geogan.core.errors import CheckpointError, ConfigError
from geogan.training.ema import EMA
from geogan.training.optim import (
    build_optimizer,
    build_optimizers,
    lr_factor,
    schedule_seconds,
)
from geogan.training.phases import TrainingSetup
from geogan.training.trainer import Trainer, find_resume


def _stats(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]


class LazyPenaltyPhase:
    """A lazy regulariser on the generator: a running mean kept as phase state."""

    name = "lazy"
    optimizer = "generator"
    updates_ema = False
    repeats = 1
    lazy = True

    def __init__(self, every: int = 3) -> None:
        self.every = every
        self.mean = torch.zeros(())
        self.steps_seen: list[int] = []

    def loss(self, batch, ctx):
        self.steps_seen.append(ctx.step)
        g = ctx.models["generator"]
        x = batch["input"]
        out = g(x, ctx.randn(tuple(x.shape)))
        size = out.square().mean()
        self.mean = 0.9 * self.mean + 0.1 * size.detach()
        return 0.01 * (size - self.mean), {"mean": self.mean}

    def state_dict(self):
        return {"mean": self.mean.clone()}

    def load_state_dict(self, state):
        self.mean = state["mean"].clone()


def _setup(extra_phases=(), seed=0, **kw) -> TrainingSetup:
    setup = make_setup(seed=seed)
    g, d = setup.models["generator"], setup.models["critic"]
    setup.optimizers = build_optimizers(
        setup.models, {"generator": ["generator"], "critic": ["critic"]}, {}
    )
    setup.phases = [*setup.phases, *extra_phases]
    for k, v in kw.items():
        setattr(setup, k, v)
    assert setup.models == {"generator": g, "critic": d}
    return setup


def _trainer(setup, run_dir, steps, train: TrainConfig | None = None, **kw):
    return Trainer(
        setup,
        run_dir=run_dir,
        device=torch.device("cpu"),
        train=train,
        seed=5,
        steps=steps,
        batch_size=2,
        log_every=1,
        checkpoint_every=kw.pop("checkpoint_every", 1000),
        tensorboard=False,
        progress=False,
        **kw,
    )


# ----------------------------------------------------------------- intervals, lazy, state


def test_phase_runs_every_n_steps_with_its_loss_scaled_by_n(tmp_path):
    lazy = LazyPenaltyPhase(every=3)
    t = _trainer(_setup([lazy]), tmp_path, steps=7)
    t.fit()
    assert lazy.steps_seen == [0, 3, 6]
    rows = _stats(tmp_path)
    for row in rows:
        if "lazy/loss" in row:
            # the logged loss is the phase's loss times the interval
            assert row["step"] - 1 in (0, 3, 6)
    assert sum("lazy/loss" in r for r in rows) == 3


def test_phase_state_is_saved_and_restored(tmp_path):
    lazy = LazyPenaltyPhase(every=2)
    _trainer(_setup([lazy]), tmp_path, steps=4).fit()
    fresh = LazyPenaltyPhase(every=2)
    t = _trainer(_setup([fresh]), tmp_path, steps=4)
    t.load(find_resume(tmp_path / "checkpoints"))
    assert float(fresh.mean) == float(lazy.mean) != 0.0


# ------------------------------------------------------------------------------ stages


def test_stages_select_phases_freeze_models_and_scale_learning_rates(tmp_path):
    train = TrainConfig(
        stages=[
            {
                "name": "pretrain",
                "steps": 3,
                "phases": ["generator"],
                "models": {"critic": "frozen"},
            },
            {"name": "adversarial", "models": {"generator": 0.25}},
        ]
    )
    setup = _setup()
    critic0 = [p.detach().clone() for p in setup.models["critic"].parameters()]
    t = _trainer(setup, tmp_path, steps=3, train=train)
    t.fit()
    # pre-training: the critic phase never ran and the frozen critic did not move
    assert all(torch.equal(a, b) for a, b in zip(critic0, setup.models["critic"].parameters()))
    assert not any("critic/loss" in r for r in _stats(tmp_path))
    assert t.stage_at(2).name == "pretrain" and t.stage_at(3).name == "adversarial"
    t2 = _trainer(setup, tmp_path, steps=5, train=train)
    t2.fit(resume="auto")
    rows = _stats(tmp_path)
    assert any("critic/loss" in r for r in rows if r["step"] > 3)
    assert not all(torch.equal(a, b) for a, b in zip(critic0, setup.models["critic"].parameters()))
    assert t2.optimizers["generator"].param_groups[0]["lr"] == pytest.approx(0.25e-4)
    assert t2.optimizers["critic"].param_groups[0]["lr"] == pytest.approx(1e-4)
    assert all(p.requires_grad for p in setup.models["critic"].parameters())


class ModeProbe(LazyPenaltyPhase):
    """Records, per step, whether the critic is in training mode when the phases run."""

    name = "probe"
    lazy = False

    def __init__(self) -> None:
        super().__init__(every=1)
        self.critic_training: list[bool] = []

    def loss(self, batch, ctx):
        self.critic_training.append(ctx.models["critic"].training)
        return super().loss(batch, ctx)


def test_a_frozen_model_is_in_eval_mode_so_its_batch_norm_statistics_stay(tmp_path):
    train = TrainConfig(
        stages=[
            {"name": "both", "steps": 2},
            {"name": "critic_frozen", "models": {"critic": "frozen"}},
        ]
    )
    probe = ModeProbe()
    setup = _setup([probe])
    t = _trainer(setup, tmp_path, steps=4, train=train)
    t.fit()
    # steps 0-1 train the critic; in steps 2-3 it is frozen: eval mode (running statistics
    # of batch norm and dropout masks fixed), as a frozen encoder must be for a painter
    assert probe.critic_training == [True, True, False, False]
    # after fit every model is back in training mode (the models outlive the Trainer)
    assert all(m.training for m in setup.models.values())


def test_a_model_the_recipe_keeps_in_eval_mode_stays_there(tmp_path):
    probe = ModeProbe()
    setup = _setup([probe])
    setup.models["critic"].eval()  # e.g. a fixed feature network
    _trainer(setup, tmp_path, steps=2).fit()
    assert probe.critic_training == [False, False]
    assert not setup.models["critic"].training and setup.models["generator"].training


def test_stage_names_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="phases"):
        _trainer(_setup(), tmp_path, 2, TrainConfig(stages=[{"name": "a", "phases": ["gen"]}]))
    with pytest.raises(ConfigError, match="models"):
        _trainer(_setup(), tmp_path, 2, TrainConfig(stages=[{"name": "a", "models": {"g": 0.1}}]))
    with pytest.raises(ValueError, match="needs 'steps'"):
        TrainConfig(stages=[{"name": "a"}, {"name": "b"}])


# ------------------------------------------------------------------------- warm starts


def test_init_from_an_export_maps_names_and_refuses_shape_mismatches(tmp_path):
    _trainer(_setup(seed=1), tmp_path / "a", steps=2).fit()
    export = tmp_path / "a" / "model.safetensors"
    setup = _setup(seed=2)
    t = _trainer(setup, tmp_path / "b", steps=1, train=TrainConfig(init_from={"path": str(export)}))
    from geogan.core.checkpoint import load_checkpoint

    tensors, _ = load_checkpoint(export)
    t.init_from(export)  # the export holds the EMA generator only
    for k, v in setup.models["generator"].state_dict().items():
        assert torch.equal(v, tensors[f"generator/{k}"])
    assert all(
        torch.equal(a, b)
        for a, b in zip(t.ema.shadow.parameters(), setup.models["generator"].parameters())
    )
    # from a resume checkpoint, with an explicit mapping (critic weights into the critic)
    resume = find_resume(tmp_path / "a" / "checkpoints")
    assert t.init_from(resume, {"critic": "critic"}) == ["critic"]
    with pytest.raises(CheckpointError, match="holds models"):
        t.init_from(export, {"critic": "critic"})
    ToyGenerator, _ = _register()
    bigger = _setup(seed=3)
    bigger.models["generator"] = ToyGenerator(channels=8)
    bigger.optimizers["generator"] = build_optimizer(
        {"generator": bigger.models["generator"]}, TrainConfig().optimizers.get("x") or _opt()
    )
    t3 = _trainer(bigger, tmp_path / "c", steps=1)
    with pytest.raises(CheckpointError, match="differ in shape"):
        t3.init_from(export)


def _opt():
    from geogan.config.schema import OptimConfig

    return OptimConfig()


def test_init_from_runs_before_training_but_not_on_resume(tmp_path):
    _trainer(_setup(seed=1), tmp_path / "a", steps=2).fit()
    train = TrainConfig(init_from={"path": str(tmp_path / "a" / "model.safetensors")})
    setup = _setup(seed=2)
    calls = []
    t = _trainer(setup, tmp_path / "b", steps=2, train=train)
    original = t.init_from
    t.init_from = lambda *a, **k: calls.append(a) or original(*a, **k)
    t.fit()
    t2 = _trainer(_setup(seed=2), tmp_path / "b", steps=3, train=train)
    t2.init_from = lambda *a, **k: calls.append(("resume", a))
    t2.fit(resume="auto")
    assert len(calls) == 1


# ----------------------------------------------------------------------- EMA and rates


def test_ema_half_life_with_rampup_follows_the_formula():
    model = torch.nn.Linear(2, 2)
    ema = EMA(model, half_life_images=1000.0, rampup=0.05, images_per_step=8)
    for step in (0, 10, 100, 10_000):
        half_life = min(1000.0, (step + 1) * 8 * 0.05)
        assert ema.beta(step) == pytest.approx(0.5 ** (8 / half_life))
    fixed = EMA(model, decay=0.99, start_step=3)
    assert fixed.beta(2) == 0.0 and fixed.beta(3) == 0.99


@pytest.mark.parametrize(
    "cfg, expected",
    [
        (LRScheduleConfig(), [1.0, 1.0, 1.0]),
        (LRScheduleConfig(warmup_steps=4), [0.25, 0.5, 1.0]),
        (LRScheduleConfig(kind="step", milestones=[1, 5], gamma=0.5), [1.0, 0.5, 0.25]),
        (
            LRScheduleConfig(kind="cosine", min_factor=0.1),
            [
                1.0,
                0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.1)),
                0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)),
            ],
        ),
        (LRScheduleConfig(kind="linear"), [1.0, 0.9, 0.5]),
    ],
)
def test_lr_schedules(cfg, expected):
    assert [lr_factor(cfg, s, 10) for s in (0, 1, 5)] == pytest.approx(expected)


def test_trainer_applies_the_schedule(tmp_path):
    train = TrainConfig(lr_schedule={"kind": "step", "milestones": [2], "gamma": 0.1})
    t = _trainer(_setup(), tmp_path, steps=3, train=train)
    t.fit()
    assert t.optimizers["critic"].param_groups[0]["lr"] == pytest.approx(1e-5)


def test_gradient_clipping_bounds_the_norm_and_logs_it(tmp_path):
    train = TrainConfig(optimizers={"generator": {"clip_grad_norm": 1e-3}})
    setup = _setup()
    norms = []
    opt = setup.optimizers["generator"]
    real_step = opt.step

    def step(*a, **k):
        grads = [p.grad for p in setup.models["generator"].parameters()]
        norms.append(float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads]))))
        return real_step(*a, **k)

    opt.step = step
    _trainer(setup, tmp_path, steps=2, train=train).fit()
    assert norms and all(n == pytest.approx(1e-3, rel=1e-4) for n in norms)
    assert all(r["generator/grad_norm"] > 1e-3 for r in _stats(tmp_path))


# ------------------------------------------------------------- validation and batches


def test_validation_logs_metrics_without_touching_the_training_stream(tmp_path):
    calls = []

    def validate(models, batches):
        calls.append((sorted(k for k, v in models.items() if v is not None), batches))
        torch.rand(100)  # consumes global RNG: must not change training
        np.random.rand(10)
        return {"score": 1.5}

    plain = _trainer(_setup(), tmp_path / "a", steps=4)
    plain.fit()
    checked = _trainer(
        _setup(validate=validate),
        tmp_path / "b",
        steps=4,
        train=TrainConfig(validation={"every": 2, "batches": 3}),
    )
    checked.fit()
    assert calls == [(["critic", "ema", "generator"], 3)] * 2
    assert [r["val/score"] for r in _stats(tmp_path / "b") if "val/score" in r] == [1.5, 1.5]
    a, b = all_state(plain), all_state(checked)
    assert all(torch.equal(a[k], b[k]) for k in a)


class NestedDataset(torch.utils.data.Dataset):
    """One sub-batch per domain: {"rf": {...}, "sn": {...}}."""

    def __getitem__(self, i):
        base = ToyDataset()[i]
        return {"rf": base, "sn": {k: -v for k, v in base.items()}}

    def __len__(self):
        return 2**31


class NestedPhase(GeneratorPhase):
    seen: list = []

    def loss(self, batch, ctx):
        NestedPhase.seen.append({k: sorted(v) for k, v in batch.items()})
        assert batch["sn"]["input"].device == ctx.device
        merged = {k: torch.cat([batch["rf"][k], batch["sn"][k]]) for k in ("input", "target")}
        return super().loss(merged, ctx)


def test_nested_batches_reach_phases_as_nested_dicts(tmp_path):
    setup = _setup(dataset=NestedDataset())
    setup.phases = [NestedPhase()]
    _trainer(setup, tmp_path, steps=2).fit()
    assert NestedPhase.seen[-1] == {"rf": ["input", "target"], "sn": ["input", "target"]}


def test_compile_wraps_marked_models_and_checkpoints_stay_plain(tmp_path):
    setup = _setup(compile_models=["generator"])
    t = _trainer(setup, tmp_path, steps=2, train=TrainConfig(compile="aot_eager"))
    assert t.step_models["generator"] is not t.models["generator"]
    t.fit()
    from geogan.core.checkpoint import load_checkpoint

    tensors, _ = load_checkpoint(tmp_path / "model.safetensors")
    assert tensors and not any("_orig_mod" in k for k in tensors)


# --------------------------------------------------------------------- exact resume


def _everything(tmp_path, steps):
    train = TrainConfig(
        stages=[{"name": "pre", "steps": 2, "phases": ["generator", "lazy"]}, {"name": "adv"}],
        lr_schedule={"kind": "cosine", "warmup_steps": 2},
        ema={"half_life_images": 20, "rampup": 0.1},
        optimizers={"critic": {"clip_grad_norm": 0.5}, "generator": {"lr": 2e-4}},
        validation={"every": 2},
    )
    setup = _setup([LazyPenaltyPhase(every=2)], validate=lambda m, b: {"x": float(torch.rand(()))})
    setup.optimizers = build_optimizers(
        setup.models, {"generator": ["generator"], "critic": ["critic"]}, train.optimizers
    )
    return _trainer(setup, tmp_path, steps=steps, train=train, checkpoint_every=3)


def test_exact_resume_is_bitwise_with_every_schedule_at_once(tmp_path):
    straight = _everything(tmp_path / "a", 7)
    straight.fit()
    first = _everything(tmp_path / "b", 3)
    first.fit()
    resumed = _everything(tmp_path / "b", 7)
    resumed.fit(resume="auto")
    a, b = all_state(straight), all_state(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    lazy_a = straight.setup.phases[-1].mean
    lazy_b = resumed.setup.phases[-1].mean
    assert torch.equal(lazy_a, lazy_b)


# ---------------------------------------------------------------- no silent restarts


def test_a_run_directory_with_checkpoints_is_never_restarted_silently(tmp_path, caplog):
    _trainer(_setup(), tmp_path, steps=2, checkpoint_every=1).fit()
    with pytest.raises(CheckpointError, match="--resume auto.*--restart"):
        _trainer(_setup(), tmp_path, steps=3).fit()
    # the newest checkpoint damaged: --resume auto falls back to the next and says so
    files = sorted((tmp_path / "checkpoints").glob("resume_*.safetensors"))
    data = bytearray(files[-1].read_bytes())
    data[-10] ^= 0xFF
    files[-1].write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        t = _trainer(_setup(), tmp_path, steps=3)
        t.fit(resume="auto")
    assert "skipped resume_000000002" in caplog.text and "resume_000000001" in caplog.text
    # every checkpoint damaged: a clear error naming each, no restart from step 0
    for f in (tmp_path / "checkpoints").glob("resume_*.safetensors"):
        f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(CheckpointError) as info:
        _trainer(_setup(), tmp_path, steps=4).fit(resume="auto")
    message = str(info.value)
    assert "none loads" in message and "--restart" in message and "resume_000000003" in message
    t = _trainer(_setup(), tmp_path, steps=1)
    assert t.fit(restart=True)["steps"] == 1
    assert list((tmp_path / "checkpoints").glob("discarded-*/resume_*.safetensors"))


# ------------------------------------------------------------ schedules over time


def test_a_schedule_over_time_follows_the_time_fraction_and_warms_up_in_steps():
    cfg = LRScheduleConfig(kind="linear", over="time", warmup_steps=2, min_factor=0.2)
    assert lr_factor(cfg, 0, 10, time_fraction=0.9) == pytest.approx(0.5)  # warm-up: steps
    assert lr_factor(cfg, 5, 10, time_fraction=0.25) == pytest.approx(0.2 + 0.8 * 0.75)
    assert lr_factor(cfg, 5, 10, time_fraction=3.0) == pytest.approx(0.2)
    cos = LRScheduleConfig(kind="cosine", over="time")
    assert lr_factor(cos, 5, 10, time_fraction=0.5) == pytest.approx(0.5)
    assert lr_factor(cfg, 6, 10) == pytest.approx(0.2 + 0.8 * 0.5)  # no budget: steps


def test_a_schedule_over_time_accepts_either_budget():
    by_limit = TrainConfig(lr_schedule={"kind": "linear", "over": "time"}, time_limit_minutes=5)
    assert schedule_seconds(by_limit.lr_schedule, by_limit.time_limit_minutes) == 300.0
    own = TrainConfig(
        lr_schedule={"kind": "linear", "over": "time", "total_minutes": 2}, time_limit_minutes=5
    )
    assert schedule_seconds(own.lr_schedule, own.time_limit_minutes) == 120.0
    no_budget = TrainConfig(lr_schedule={"kind": "linear", "over": "time"})
    assert schedule_seconds(no_budget.lr_schedule, no_budget.time_limit_minutes) is None
    steps = TrainConfig(lr_schedule={"kind": "linear"}, time_limit_minutes=5)
    assert schedule_seconds(steps.lr_schedule, steps.time_limit_minutes) is None


@pytest.mark.parametrize("budget_minutes, expected_factor", [(1e-6, 0.1), (1e6, 1.0)])
def test_the_trainer_decays_the_learning_rate_over_the_time_budget(
    tmp_path, budget_minutes, expected_factor
):
    # a budget of 60 us is spent by the first step; one of two years is not begun
    train = TrainConfig(
        lr_schedule={
            "kind": "linear",
            "over": "time",
            "min_factor": 0.1,
            "total_minutes": budget_minutes,
        }
    )
    t = _trainer(_setup(), tmp_path, steps=3, train=train)
    t.fit()
    group = t.optimizers["critic"].param_groups[0]
    assert group["lr"] == pytest.approx(group["base_lr"] * expected_factor, rel=1e-4)
    assert t.train_seconds > 0


def test_training_seconds_carry_over_a_resume(tmp_path):
    train = TrainConfig(lr_schedule={"kind": "linear", "over": "time", "total_minutes": 60})
    first = _trainer(_setup(), tmp_path, steps=2, train=train)
    first.fit()
    spent = first.train_seconds
    assert spent > 0
    resumed = _trainer(_setup(), tmp_path, steps=4, train=train)
    resumed.load(resumed.latest_resume())
    assert resumed.train_seconds == spent
    resumed.fit(resume="auto")
    assert resumed.train_seconds > spent
