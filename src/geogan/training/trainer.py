"""The one training loop shared by every recipe.

The Trainer runs the phases a recipe supplies (e.g. 5 critic steps, then one generator
step, then a lazy regulariser every 16 steps), inside named stages (e.g. supervised
pre-training, then adversarial training, with models frozen or at an LR factor), with
mixed precision, EMA (fixed decay or half-life with ramp-up), LR schedules, gradient
clipping, warm starts from other runs, validation callbacks, gradient averaging across
``torchrun`` processes, checkpoints (export + resume), exact resume, a NaN/Inf guard with
rollback, graceful preemption on SIGTERM/SIGUSR1, TensorBoard logging and a progress bar.
It never looks at recipe names.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from geogan.config.schema import StageConfig, TrainConfig
from geogan.core.atomic import remove_stale_temporaries
from geogan.core.checkpoint import (
    flatten_state,
    load_checkpoint,
    load_module_tensors,
    module_tensors,
    save_checkpoint,
    unflatten_state,
)
from geogan.core.distributed import DistInfo, barrier
from geogan.core.errors import CheckpointError, ConfigError, TrainingDivergedError
from geogan.core.modules import model_spec, unwrap
from geogan.core.progress import ProgressBar
from geogan.core.seeding import derive_seed, get_rng_state, set_rng_state
from geogan.core.tracking import Tracker
from geogan.training.ema import EMA
from geogan.training.optim import lr_factor, schedule_seconds
from geogan.training.phases import ResumableBatchSampler, Stage, StepContext, TrainingSetup

log = logging.getLogger(__name__)

PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: "try again", what a requeue script looks for
RESUME_PREFIX = "resume_"
EXPORT_PREFIX = "export_"

__all__ = [
    "PREEMPTED_EXIT_CODE",
    "Preempted",
    "Trainer",
    "autocast_factory",
    "bf16_supported_on_cpu",
    "find_resume",
    "latest_resume",
    "resolve_precision",
    "resolve_stages",
    "to_device",
    "unwrap",
]


class Preempted(Exception):
    """Raised after a resume checkpoint was written in response to SIGTERM/SIGUSR1."""

    exit_code = PREEMPTED_EXIT_CODE


def autocast_factory(
    device: torch.device, precision: str
) -> tuple[Any, torch.amp.GradScaler | None]:
    """``(callable returning an autocast context, GradScaler or None)`` for a precision.

    ``auto``: bf16 on CPU when the processor supports it, bf16 on CUDA when supported
    else fp16. fp16 uses a GradScaler (CUDA only); bf16 needs none.
    """
    precision = resolve_precision(device, precision)
    if precision == "fp32":
        return contextlib.nullcontext, None
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    if device.type == "cpu" and dtype == torch.float16:
        raise ConfigError("train.precision=fp16 needs a CUDA device; use bf16 or fp32 on CPU")
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    return (lambda: torch.autocast(device.type, dtype=dtype)), scaler


def resolve_precision(device: torch.device, precision: str) -> str:
    """The concrete precision ("fp32" | "bf16" | "fp16") that ``precision`` means on ``device``.

    ``auto``: bf16 on CUDA when supported, else fp16; on CPU bf16 only when the processor
    has native bf16 instructions, else fp32 (emulated bf16 is several times slower than
    fp32 there). Other values are returned unchanged.
    """
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if bf16_supported_on_cpu() else "fp32"


def bf16_supported_on_cpu() -> bool:
    """True when the CPU has native bf16 matrix instructions (AVX-512 BF16 / AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


MALLOC_TUNING_ENV = "GEOGAN_MALLOC_TUNING"
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt parameters


def keep_freed_memory() -> bool:
    """Opt-in (``GEOGAN_MALLOC_TUNING=1``): let glibc's malloc keep freed memory for reuse
    instead of returning it to the system.

    PyTorch's CPU allocator has no cache: every activation is a fresh ``malloc``, and glibc
    serves blocks above 32 MB with ``mmap`` and returns them with ``munmap`` when freed, so
    each training step page-faults its working set in again (zero-filled by the kernel).
    With ``mmap`` off and no trimming, freed blocks are reused: the paper configuration's
    generator step runs about a quarter faster on 2 cores, but glibc's heap fragments and
    the peak resident memory grows by about two thirds, which is why it is not the default.
    jemalloc (``LD_PRELOAD=libjemalloc.so.2 MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1``)
    gets the same speed for a sixth more memory; see docs/performance.md.

    glibc only (Linux). Process-wide and irreversible, so only the Trainer calls it.
    Returns whether it applied.
    """
    if os.environ.get(MALLOC_TUNING_ENV, "0") != "1" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc, not musl
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt takes an int: -1 becomes SIZE_MAX for the (size_t) trim threshold (never trim)
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, -1))


def to_device(obj: Any, device: torch.device, memory_format: torch.memory_format) -> Any:
    """Every tensor in a (nested) batch moved to ``device``; 4D float tensors in
    ``memory_format`` (channels_last speeds up 2D convolutions on CPU)."""
    if isinstance(obj, torch.Tensor):
        v = obj.to(device, non_blocking=True)
        if v.dim() == 4 and v.is_floating_point():
            v = v.contiguous(memory_format=memory_format)
        return v
    if isinstance(obj, Mapping):
        return {k: to_device(v, device, memory_format) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device, memory_format) for v in obj)
    return obj


def resolve_stages(
    configured: list[StageConfig] | list[Any], phase_names: list[str], model_names: list[str]
) -> list[Stage]:
    """Stages over consecutive step ranges from config entries (or :class:`Stage` objects);
    unknown phase or model names are ConfigErrors. Empty: one stage running everything."""
    if not configured:
        return [Stage("train", 0, None)]
    stages, start = [], 0
    for i, entry in enumerate(configured):
        if isinstance(entry, Stage):
            stages.append(entry)
            start = entry.stop or start
            continue
        s = entry if isinstance(entry, StageConfig) else StageConfig.model_validate(entry)
        if s.phases is not None:
            unknown = sorted(set(s.phases) - set(phase_names))
            if unknown:
                raise ConfigError(
                    f"train.stages[{i}] ({s.name!r}) names phases {unknown}; this recipe's "
                    f"phases are {phase_names}"
                )
        unknown = sorted(set(s.models) - set(model_names))
        if unknown:
            raise ConfigError(
                f"train.stages[{i}] ({s.name!r}) names models {unknown}; this run builds "
                f"{model_names}"
            )
        last = i == len(configured) - 1
        stop = None if last else start + int(s.steps or 0)
        phases = frozenset(s.phases) if s.phases is not None else None
        stages.append(Stage(s.name, start, stop, phases, dict(s.models)))
        start = stop if stop is not None else start
    return stages


_TRAIN_ALIASES = {
    "ema_decay": ("ema", "decay"),
    "ema_start": ("ema", "start_step"),
    "nan_max_consecutive": ("nan_guard", "max_consecutive"),
    "nan_lr_factor": ("nan_guard", "lr_factor"),
    "nan_max_rollbacks": ("nan_guard", "max_rollbacks"),
}


def _train_config(train: TrainConfig | None, settings: dict[str, Any]) -> TrainConfig:
    """``train`` with keyword settings applied (``steps=..``, ``nan_max_consecutive=..``)."""
    tree = (train or TrainConfig()).model_dump()
    cls = type(train) if train is not None else TrainConfig
    for key, value in settings.items():
        if key == "time_limit_s":
            tree["time_limit_minutes"] = None if value is None else value / 60.0
        elif key in _TRAIN_ALIASES:
            section, field = _TRAIN_ALIASES[key]
            tree[section][field] = value
        elif key in tree:
            tree[key] = value
        else:
            raise TypeError(f"Trainer got an unexpected setting {key!r}")
    return cls.model_validate(tree)


class Trainer:
    """Runs a :class:`TrainingSetup` for ``train.steps`` steps.

    A *step* runs every phase of the current stage whose interval divides the step index,
    each ``repeats`` times on fresh batches; the step counter counts completed steps.
    Checkpoints are written every ``checkpoint_every`` steps and at the end into
    ``run_dir/checkpoints``; ``run_dir/model.safetensors`` is always the newest export.

    Engine settings come from ``train`` (a :class:`~geogan.config.schema.TrainConfig`,
    or a recipe's subclass); keyword ``settings`` override its fields (``steps=20``,
    ``batch_size=2``, ``checkpoint_every=5``, ``nan_max_consecutive=3``, ...).
    """

    def __init__(
        self,
        setup: TrainingSetup,
        *,
        run_dir: str | Path,
        device: torch.device,
        train: TrainConfig | None = None,
        seed: int = 0,
        num_workers: int = 0,
        prefetch_factor: int = 4,
        config: dict[str, Any] | None = None,
        dist_info: DistInfo | None = None,
        progress: bool = True,
        **settings: Any,
    ) -> None:
        cfg = _train_config(train, settings)
        self.cfg = cfg
        self.setup = setup
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.steps = cfg.steps
        self.batch_size = cfg.batch_size
        self.device = device
        self.seed = seed
        self.precision = cfg.precision
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.checkpoint_every = cfg.checkpoint_every
        self.keep_checkpoints = cfg.keep_checkpoints
        self.log_every = cfg.log_every
        self.image_every = cfg.image_every
        self.nan_max_consecutive = cfg.nan_guard.max_consecutive
        self.nan_lr_factor = cfg.nan_guard.lr_factor
        self.nan_max_rollbacks = cfg.nan_guard.max_rollbacks
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.time_limit_s = cfg.time_limit_minutes * 60 if cfg.time_limit_minutes else None
        # training seconds over every run of this training (a resume continues the count):
        # the clock of a schedule over time
        self.train_seconds = 0.0
        self._schedule_s = schedule_seconds(cfg.lr_schedule, cfg.time_limit_minutes)
        self.config = config or {}
        self.dist = dist_info or DistInfo()
        self.progress = progress and self.dist.is_main

        if device.type == "cpu":
            keep_freed_memory()
        self.models = setup.models
        for m in self.models.values():
            m.to(device=device, memory_format=self.memory_format)
        # what phases call: torch.compile wrappers where asked; checkpoints use self.models
        self.step_models = dict(self.models)
        if cfg.compile:
            backend = "inductor" if cfg.compile is True else cfg.compile
            for name in setup.compile_models:
                self.step_models[name] = torch.compile(self.models[name], backend=backend)
        self.optimizers = setup.optimizers
        for o in self.optimizers.values():
            for g in o.param_groups:
                g.setdefault("base_lr", g["lr"])
        self._initial_requires_grad = {
            name: [p.requires_grad for p in m.parameters()] for name, m in self.models.items()
        }
        # a stage's freezing puts a model in eval mode; unfrozen, it returns to its own mode
        # (a recipe's fixed eval-mode network stays in eval)
        self._initial_training = {name: m.training for name, m in self.models.items()}
        reserved = sorted({"kind", "step", "models", "config"} & set(setup.export_meta))
        if reserved:
            raise ValueError(f"export_meta may not use the engine's keys {reserved}")
        phase_names = [p.name for p in setup.phases]
        self.stages = resolve_stages(cfg.stages or setup.stages, phase_names, list(self.models))
        self._stage: Stage | None = None
        self.autocast, self.scaler = autocast_factory(device, cfg.precision)
        self.ema: EMA | None = None
        if setup.ema_model is not None:
            self.ema = EMA(
                self.models[setup.ema_model],
                decay=cfg.ema.decay,
                start_step=cfg.ema.start_step,
                half_life_images=cfg.ema.half_life_images,
                rampup=cfg.ema.rampup,
                images_per_step=cfg.batch_size * self.dist.world_size,
            )
        self.tracker = Tracker(
            self.run_dir,
            enabled=self.dist.is_main,
            tensorboard=cfg.tensorboard,
            mlflow=cfg.mlflow,
            params=self.config,
        )

        self.step = 0
        self.batches_consumed = 0
        self.lr_scale = 1.0
        self.rollbacks = 0
        self.bad_in_a_row = 0
        self.skipped_steps = 0
        self._stop_signal: int | None = None
        self._loader_iter = None
        self._sync_initial_weights()

    # ------------------------------------------------------------------ data
    def _make_loader(self) -> None:
        sampler = ResumableBatchSampler(
            self.batch_size, self.batches_consumed, self.dist.rank, self.dist.world_size
        )
        # A loader draws its workers' base seed when an iterator starts: from its own generator,
        # not the global RNG, so that a resumed run's global RNG state matches a straight run's.
        loader_rng = torch.Generator().manual_seed(
            derive_seed(self.seed, self.batches_consumed, self.dist.rank)
        )
        kwargs: dict[str, Any] = {
            "batch_sampler": sampler,
            "num_workers": self.num_workers,
            "generator": loader_rng,
        }
        if self.setup.collate_fn is not None:
            kwargs["collate_fn"] = self.setup.collate_fn
        if self.num_workers > 0:
            kwargs.update(prefetch_factor=self.prefetch_factor, persistent_workers=False)
        if self.device.type == "cuda":
            kwargs["pin_memory"] = True
        loader = torch.utils.data.DataLoader(self.setup.dataset, **kwargs)
        self._loader_iter = iter(loader)

    def _next_batch(self) -> dict[str, Any]:
        if self._loader_iter is None:
            self._make_loader()
        batch = next(self._loader_iter)
        self.batches_consumed += 1
        return to_device(batch, self.device, self.memory_format)

    # --------------------------------------------------------- stages / rates
    def stage_at(self, step: int) -> Stage:
        """The stage that step ``step`` (0-based) belongs to."""
        for stage in self.stages:
            if stage.stop is None or step < stage.stop:
                return stage
        return self.stages[-1]

    def _enter_stage(self, stage: Stage) -> None:
        """Freeze or unfreeze models as the stage says (idempotent). A frozen model is also in
        eval mode: its batch-norm running statistics stay as the earlier stage left them and
        its dropout is off, so that "frozen" means the same function, not just fixed weights."""
        for name, m in self.models.items():
            flags = self._initial_requires_grad[name]
            frozen = stage.frozen(name)
            for p, flag in zip(m.parameters(), flags):
                p.requires_grad_(flag and not frozen)
            m.train(self._initial_training[name] and not frozen)
        if self._stage is not None and self._stage.name != stage.name and self.dist.is_main:
            log.info("step %d: stage %r begins", self.step, stage.name)
        self._stage = stage

    def _restore_requires_grad(self) -> None:
        """Undo a stage's freezing (the models outlive the Trainer, e.g. in a notebook)."""
        for name, m in self.models.items():
            for p, flag in zip(m.parameters(), self._initial_requires_grad[name]):
                p.requires_grad_(flag)
            m.train(self._initial_training[name])
        self._stage = None

    def _apply_learning_rates(self, stage: Stage) -> None:
        fraction = None if self._schedule_s is None else self.train_seconds / self._schedule_s
        sched = lr_factor(self.cfg.lr_schedule, self.step, self.steps, time_fraction=fraction)
        for o in self.optimizers.values():
            for g in o.param_groups:
                factor = stage.lr_factor(g["model"]) if "model" in g else 1.0
                g["lr"] = g["base_lr"] * sched * factor * self.lr_scale

    # ------------------------------------------------------------ one step
    def _train_step(self) -> dict[str, float]:
        logs: dict[str, float] = {}
        any_bad = False
        stage = self.stage_at(self.step)
        if stage is not self._stage:
            self._enter_stage(stage)
        self._apply_learning_rates(stage)
        for phase in self.setup.phases:
            every = int(getattr(phase, "every", 1) or 1)
            if not stage.runs(phase.name) or self.step % every:
                continue
            opt = self.optimizers[phase.optimizer]
            clip = self._clip_norm(phase.optimizer)
            for repeat in range(phase.repeats):
                batch = self._next_batch()
                ctx = StepContext(
                    step=self.step,
                    repeat=repeat,
                    rank=self.dist.rank,
                    seed=self.seed,
                    device=self.device,
                    autocast=self.autocast,
                    models=self.step_models,
                    memory_format=self.memory_format,
                    every=every,
                    stage=stage.name,
                )
                opt.zero_grad(set_to_none=True)
                loss, parts = phase.loss(batch, ctx)
                if getattr(phase, "lazy", False) and every > 1:
                    loss = loss * every  # lazy regularisation keeps its weight (StyleGAN2)
                bad = not bool(torch.isfinite(loss.detach()).item())
                grad_norm = None
                if not bad:
                    if self.scaler is not None:
                        self.scaler.scale(loss).backward()
                    else:
                        loss.backward()
                    self._average_gradients(opt)
                    if self.scaler is not None:
                        self.scaler.unscale_(opt)
                    bad = not self._grads_finite(opt)
                    if not bad and clip is not None:
                        grad_norm = self._clip(opt, clip)
                bad = self._agree(bad)
                if bad:
                    any_bad = True
                    opt.zero_grad(set_to_none=True)
                    if self.scaler is not None:
                        self.scaler.update()  # lowers the scale; fp16 overflow is expected now and then
                    continue
                if self.scaler is not None:
                    self.scaler.step(opt)
                    self.scaler.update()
                else:
                    opt.step()
                if phase.updates_ema and self.ema is not None:
                    self.ema.update(self.models[self.setup.ema_model], self.step)
                for k, v in parts.items():
                    logs[f"{phase.name}/{k}"] = (
                        float(v.detach().float().item()) if torch.is_tensor(v) else float(v)
                    )
                logs[f"{phase.name}/loss"] = float(loss.detach().float().item())
                if grad_norm is not None:
                    logs[f"{phase.name}/grad_norm"] = grad_norm
        logs["_bad"] = float(any_bad)
        return logs

    def _clip_norm(self, optimizer: str) -> float | None:
        cfg = self.cfg.optimizers.get(optimizer)
        return cfg.clip_grad_norm if cfg is not None else None

    @staticmethod
    def _trainable(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
        return [p for g in opt.param_groups for p in g["params"] if p.requires_grad]

    def _clip(self, opt: torch.optim.Optimizer, max_norm: float) -> float:
        """Clip the optimizer's global gradient norm; returns the norm before clipping."""
        grads = [p for p in self._trainable(opt) if p.grad is not None]
        if not grads:
            return 0.0
        return float(torch.nn.utils.clip_grad_norm_(grads, max_norm, foreach=True).item())

    def _average_gradients(self, opt: torch.optim.Optimizer) -> None:
        """Mean of gradients over ranks: one flat all-reduce per optimizer.

        We average explicitly rather than wrapping models in DistributedDataParallel:
        the gradient penalty's double backward and phases that run a model without
        stepping it (the critic inside the generator loss) do not fit DDP's reducer.
        Frozen parameters (``requires_grad`` off) are left out and keep no gradient.
        """
        if not self.dist.enabled:
            return
        params = self._trainable(opt)
        if not params:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.dist.world_size
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p).clone()
            offset += n

    @staticmethod
    def _grads_finite(opt: torch.optim.Optimizer) -> bool:
        grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        if not grads:
            return True
        norms = torch._foreach_norm(grads)
        return bool(torch.isfinite(torch.stack(norms)).all().item())

    def _agreed_seconds(self, seconds: float) -> float:
        """The slowest rank's elapsed seconds, so every rank stops at the same step and
        follows the same time schedule (a rank that stopped alone would hang the others)."""
        if not self.dist.enabled:
            return seconds
        t = torch.tensor([seconds], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    def _agree(self, bad: bool) -> bool:
        """All ranks skip a step if any rank saw a non-finite value (weights stay identical)."""
        if not self.dist.enabled:
            return bad
        t = torch.tensor([1.0 if bad else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def _sync_initial_weights(self) -> None:
        if not self.dist.enabled:
            return
        for m in self.models.values():
            for t in list(m.parameters()) + list(m.buffers()):
                dist.broadcast(t.data, src=0)
        if self.ema is not None:
            for t in list(self.ema.shadow.parameters()) + list(self.ema.shadow.buffers()):
                dist.broadcast(t.data, src=0)

    # ------------------------------------------------------------ warm start
    def init_from(
        self, path: str | Path, models: Mapping[str, str] | None = None, strict: bool = True
    ) -> list[str]:
        """Load weights from another run's export or resume checkpoint before training.

        ``models`` maps this run's model names to names in the checkpoint (default: every
        model of this run that the checkpoint holds, by the same name). Shapes must match;
        with ``strict`` every tensor of a mapped model must be present. Returns the names
        of the models loaded. The EMA copy starts from the loaded generator.
        """
        tensors, meta = load_checkpoint(path)
        kind = meta.get("kind")
        if kind not in ("export", "resume"):
            raise CheckpointError(f"init_from: {path} is not a geogan export or resume checkpoint")
        prefix_of = (lambda name: f"model/{name}") if kind == "resume" else (lambda name: name)
        held = set(meta.get("models", {}))
        mapping = dict(models) if models else {n: n for n in self.models if n in held}
        unknown = sorted(set(mapping) - set(self.models))
        if unknown:
            raise ConfigError(
                f"train.init_from.models names {unknown}, but this run builds {sorted(self.models)}"
            )
        missing = sorted(src for src in mapping.values() if src not in held)
        if missing or not mapping:
            raise CheckpointError(
                f"init_from: {path} holds models {sorted(held)}, not {missing or '(none mapped)'}; "
                "set train.init_from.models to map this run's models to those"
            )
        for dst, src in mapping.items():
            self._load_weights(self.models[dst], prefix_of(src), tensors, path, dst, src, strict)
        if self.ema is not None and self.setup.ema_model in mapping:
            self.ema.copy_from(self.models[self.setup.ema_model])
        self._sync_initial_weights()
        return sorted(mapping)

    @staticmethod
    def _load_weights(module, prefix, tensors, path, dst, src, strict) -> None:
        have = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + "/")}
        target = unwrap(module).state_dict()
        bad = [
            f"{k} {tuple(have[k].shape)} vs {tuple(v.shape)}"
            for k, v in target.items()
            if k in have and have[k].shape != v.shape
        ]
        if bad:
            raise CheckpointError(
                f"init_from: {path} model {src!r} does not fit this run's {dst!r}: "
                f"{len(bad)} tensors differ in shape, e.g. {'; '.join(bad[:3])}"
            )
        absent = sorted(set(target) - set(have))
        extra = sorted(set(have) - set(target))
        if strict and (absent or extra):
            raise CheckpointError(
                f"init_from: {path} model {src!r} does not fit this run's {dst!r}: missing "
                f"{absent[:3]}, unexpected {extra[:3]}; set train.init_from.strict=false to "
                "load the tensors that match"
            )
        unwrap(module).load_state_dict({k: v for k, v in have.items() if k in target}, strict=False)

    # ------------------------------------------------------- checkpointing
    def _phase_states(self, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
        meta = {}
        for phase in self.setup.phases:
            state_fn = getattr(phase, "state_dict", None)
            if state_fn is not None:
                meta[phase.name] = flatten_state(f"phase/{phase.name}", state_fn(), tensors)
        return meta

    def _resume_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors: dict[str, torch.Tensor] = {}
        for name, m in self.models.items():
            tensors.update(module_tensors(f"model/{name}", m))
        if self.ema is not None:
            tensors.update(module_tensors("ema", self.ema.shadow))
        optim_meta = {
            name: flatten_state(f"optim/{name}", o.state_dict(), tensors)
            for name, o in self.optimizers.items()
        }
        scaler_meta = (
            flatten_state("scaler", self.scaler.state_dict(), tensors)
            if self.scaler is not None
            else None
        )
        rng = get_rng_state()
        for k, v in rng.pop("tensors").items():
            tensors[f"rng/{k}"] = v
        meta = {
            "kind": "resume",
            "step": self.step,
            "batches_consumed": self.batches_consumed,
            "lr_scale": self.lr_scale,
            "rollbacks": self.rollbacks,
            "skipped_steps": self.skipped_steps,
            "train_seconds": self.train_seconds,
            "seed": self.seed,
            "world_size": self.dist.world_size,
            "optimizers": optim_meta,
            "scaler": scaler_meta,
            "phases": self._phase_states(tensors),
            "rng": rng,
            "models": {name: model_spec(m) for name, m in self.models.items()},
            "config": self.config,
            "export_meta": self.setup.export_meta,
        }
        return tensors, meta

    def _export_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors: dict[str, torch.Tensor] = {}
        specs = {}
        if self.setup.ema_model is not None:
            src = self.ema.shadow if self.ema is not None else self.models[self.setup.ema_model]
            tensors.update(module_tensors(self.setup.ema_model, src))
            specs[self.setup.ema_model] = model_spec(self.models[self.setup.ema_model])
        for name in self.setup.export_models:
            tensors.update(module_tensors(name, self.models[name]))
            specs[name] = model_spec(self.models[name])
        # the engine's keys win: a recipe's export_meta cannot turn an export into another kind
        meta = {
            **self.setup.export_meta,
            "kind": "export",
            "step": self.step,
            "models": specs,
            "config": self.config,
        }
        return tensors, meta

    def save(self) -> Path | None:
        """Write resume + export checkpoints for the current step (main rank); prune old ones."""
        path = None
        if self.dist.is_main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            tensors, meta = self._resume_state()
            path = save_checkpoint(
                self.ckpt_dir / f"{RESUME_PREFIX}{self.step:09d}.safetensors", tensors, meta
            )
            tensors, meta = self._export_state()
            save_checkpoint(
                self.ckpt_dir / f"{EXPORT_PREFIX}{self.step:09d}.safetensors", tensors, meta
            )
            save_checkpoint(self.run_dir / "model.safetensors", tensors, meta)
            self._prune()
        barrier()
        return path

    def _prune(self) -> None:
        for prefix in (RESUME_PREFIX, EXPORT_PREFIX):
            files = sorted(self.ckpt_dir.glob(f"{prefix}*.safetensors"))
            for old in files[: -self.keep_checkpoints]:
                old.unlink(missing_ok=True)

    def load(self, path: str | Path) -> None:
        """Restore everything from a resume checkpoint: exact continuation."""
        tensors, meta = load_checkpoint(path)
        if meta.get("kind") != "resume":
            raise CheckpointError(
                f"{path} is a {meta.get('kind')} checkpoint; --resume needs a resume_*.safetensors"
            )
        if set(meta["models"]) != set(self.models):
            raise CheckpointError(
                f"{path} holds models {sorted(meta['models'])} but this run builds {sorted(self.models)}"
            )
        for name, m in self.models.items():
            saved = meta["models"][name]
            if saved != model_spec(m):
                raise CheckpointError(
                    f"{path}: model {name!r} was built as {saved['kwargs']} but the config now builds "
                    f"{model_spec(m)['kwargs']}; use the run's saved config.yaml to resume"
                )
            load_module_tensors(f"model/{name}", m, tensors)
        if self.ema is not None:
            load_module_tensors("ema", self.ema.shadow, tensors)
        for name, o in self.optimizers.items():
            if name not in meta["optimizers"]:
                raise CheckpointError(
                    f"{path} has no state for optimizer {name!r} (it holds "
                    f"{sorted(meta['optimizers'])}); use the run's saved config.yaml to resume"
                )
            try:
                o.load_state_dict(unflatten_state(meta["optimizers"][name], tensors))
            except (ValueError, KeyError) as exc:
                raise CheckpointError(
                    f"{path}: optimizer {name!r} does not match this run ({exc}); it was written "
                    "by another geogan version or config; use the run's saved config.yaml"
                ) from None
        if self.scaler is not None and meta.get("scaler") is not None:
            self.scaler.load_state_dict(unflatten_state(meta["scaler"], tensors))
        phase_states = meta.get("phases") or {}
        for phase in self.setup.phases:
            if hasattr(phase, "load_state_dict") and phase.name in phase_states:
                phase.load_state_dict(unflatten_state(phase_states[phase.name], tensors))
        rng = dict(meta["rng"])
        rng["tensors"] = {k[len("rng/") :]: v for k, v in tensors.items() if k.startswith("rng/")}
        if meta.get("world_size", 1) == self.dist.world_size:
            set_rng_state(rng)
        self.step = int(meta["step"])
        self.batches_consumed = int(meta["batches_consumed"])
        self.lr_scale = float(meta.get("lr_scale", 1.0))
        self.rollbacks = int(meta.get("rollbacks", 0))
        self.skipped_steps = int(meta.get("skipped_steps", 0))
        self.train_seconds = float(meta.get("train_seconds", 0.0))
        self._loader_iter = None
        self._stage = None

    def latest_resume(self) -> Path | None:
        """Newest resume checkpoint in the run directory that loads, or None."""
        return latest_resume(self.ckpt_dir)

    # ------------------------------------------------------- guard / signals
    def _rollback(self) -> None:
        path = self.latest_resume()
        if path is None or self.rollbacks >= self.nan_max_rollbacks:
            raise TrainingDivergedError(
                f"training diverged: {self.bad_in_a_row} steps in a row with non-finite loss or gradients at step "
                f"{self.step} (rollbacks used: {self.rollbacks}); lower the learning rates "
                f"(train.optimizers.<name>.lr: {', '.join(sorted(self.optimizers))}) or use precision fp32"
            )
        rollbacks = self.rollbacks + 1
        scale = self.lr_scale * self.nan_lr_factor
        self.load(path)
        self.rollbacks = rollbacks
        self.lr_scale = scale
        self._apply_learning_rates(self.stage_at(self.step))
        self.bad_in_a_row = 0
        self.tracker.log_scalars(
            self.step, {"guard/rollback": float(rollbacks), "guard/lr_scale": scale}
        )

    def _handle_signal(self, signum: int, _frame: Any) -> None:
        self._stop_signal = signum

    @contextlib.contextmanager
    def _signals(self):
        old = {}
        try:
            for s in (signal.SIGTERM, signal.SIGUSR1):
                old[s] = signal.signal(s, self._handle_signal)
        except ValueError:  # signals can only be caught in the main thread
            pass
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    # ------------------------------------------------------------- validation
    def _validate(self) -> None:
        """Run the recipe's validation callback without touching the training RNG streams."""
        if self.setup.validate is None or not self.dist.is_main:
            return
        models = {**self.models, "ema": self.ema.shadow if self.ema else None}
        modes = {name: m.training for name, m in self.models.items()}
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            metrics = self.setup.validate(models, self.cfg.validation.batches)
        for name, m in self.models.items():
            m.train(modes[name])
        if metrics:
            self.tracker.log_scalars(self.step, {f"val/{k}": float(v) for k, v in metrics.items()})

    # ------------------------------------------------------------------ fit
    def fit(self, resume: str | Path | None = None, *, restart: bool = False) -> dict[str, Any]:
        """Train to ``steps``; ``resume`` is a resume checkpoint path or ``"auto"``.

        A run directory that already holds resume checkpoints is never trained from step 0
        silently: without ``resume`` it is an error, unless ``restart`` (start over on
        purpose: the old checkpoints are moved to ``checkpoints/discarded-<time>/``).
        ``resume="auto"`` continues from the newest intact checkpoint and says which were
        refused; when every one is damaged it is an error naming each and its reason.
        """
        if self.dist.is_main:
            # temporary folders of writes killed in an earlier run (never read as checkpoints)
            for folder in (self.run_dir, self.ckpt_dir):
                for stale in remove_stale_temporaries(folder):
                    log.info("removed %s left by an interrupted write", stale)
        existing = sorted(self.ckpt_dir.glob(f"{RESUME_PREFIX}*.safetensors"))
        if restart:
            if existing and self.dist.is_main:
                self._discard(existing)
            barrier()
            resume = None
        elif resume == "auto":
            resume = find_resume(self.ckpt_dir)
        elif resume is None and existing:
            raise CheckpointError(
                f"{self.run_dir} already holds {len(existing)} resume checkpoints; continue with "
                "--resume auto, or start over on purpose with --restart (moves them aside)"
            )
        if resume is not None:
            self.load(resume)
        elif self.cfg.init_from is not None:
            loaded = self.init_from(
                self.cfg.init_from.path, self.cfg.init_from.models, self.cfg.init_from.strict
            )
            log.info("initialised %s from %s", ", ".join(loaded), self.cfg.init_from.path)
        start_step, t0 = self.step, time.perf_counter()
        seconds_before = self.train_seconds
        stopped = "completed"
        limited = self.time_limit_s is not None
        timed = limited or self._schedule_s is not None
        progress = self._progress_bar(limited)
        try:
            with self._signals(), progress:
                while self.step < self.steps:
                    logs = self._train_step()
                    if logs.pop("_bad"):
                        self.bad_in_a_row += 1
                        self.skipped_steps += 1
                        self.tracker.log_scalars(
                            self.step, {"guard/skipped": float(self.skipped_steps)}
                        )
                        if self.bad_in_a_row >= self.nan_max_consecutive:
                            self._rollback()
                            continue
                    else:
                        self.bad_in_a_row = 0
                    self.step += 1
                    if self.step % self.log_every == 0 or self.step == self.steps:
                        self.tracker.log_scalars(self.step, logs)
                    if (
                        self.setup.image_fn is not None
                        and self.step % self.image_every == 0
                        and self.dist.is_main
                    ):
                        self._log_images()
                    val_every = self.cfg.validation.every
                    if val_every and self.step % val_every == 0:
                        self._validate()
                    elapsed = time.perf_counter() - t0
                    if timed:
                        elapsed = self._agreed_seconds(elapsed)
                    self.train_seconds = seconds_before + elapsed
                    if progress.enabled:
                        shown = "  ".join(
                            f"{k.split('/')[0][:3]}={v:.3g}"
                            for k, v in logs.items()
                            if k.endswith("/loss")
                        )
                        rate = (self.step - start_step) / max(elapsed, 1e-9)
                        progress.update(
                            min(elapsed, self.time_limit_s) if limited else self.step,
                            rate=f"{rate:.2f} it/s",
                            losses=shown,
                            steps=f"{self.step}/{self.steps}",
                        )
                    if self.step % self.checkpoint_every == 0 and self.step < self.steps:
                        self.save()
                    if self._stop_signal is not None:
                        self.save()
                        raise Preempted(
                            f"received signal {self._stop_signal} at step {self.step}: resume checkpoint written; "
                            "continue with --resume auto"
                        )
                    if limited and elapsed > self.time_limit_s:
                        stopped = "time_limit"
                        break
            self.save()
        finally:
            self._restore_requires_grad()
            self.tracker.close()
        elapsed = time.perf_counter() - t0
        return {
            "steps": self.step,
            "steps_this_run": self.step - start_step,
            "seconds": elapsed,
            "seconds_per_step": elapsed / max(1, self.step - start_step),
            "skipped_steps": self.skipped_steps,
            "rollbacks": self.rollbacks,
            "stopped": stopped,
            "stage": self.stage_at(max(self.step - 1, 0)).name,
            "run_dir": str(self.run_dir),
        }

    def _progress_bar(self, limited: bool) -> ProgressBar:
        """The training bar: seconds of ``train.time_limit_minutes`` when the run is time-limited
        (its ETA is the end of the limit, not of ``train.steps``), else steps."""
        bar = ProgressBar(
            "train",
            self.time_limit_s if limited else self.steps,
            unit="s" if limited else "steps",
            enabled=self.progress,
            count=not limited,
            fields=("steps", "losses"),
            transient=False,
        )
        if not limited:
            bar.start()
            bar.update(self.step, rate="", steps=f"{self.step}/{self.steps}")
        return bar

    def _discard(self, files: list[Path]) -> None:
        folder = self.ckpt_dir / f"discarded-{time.strftime('%Y%m%dT%H%M%S')}"
        folder.mkdir(parents=True, exist_ok=True)
        for f in files:
            f.rename(folder / f.name)
        log.warning("--restart: moved %d old resume checkpoints to %s", len(files), folder)

    @torch.no_grad()
    def _log_images(self) -> None:
        batch = self._peek_batch()
        images = self.setup.image_fn(
            {**self.models, "ema": self.ema.shadow if self.ema else None}, batch
        )
        if images is not None and math.prod(images.shape) > 0:
            self.tracker.log_images(self.step, "samples", images.float().cpu())

    def _peek_batch(self) -> dict[str, Any]:
        """A fixed batch for image logs, drawn outside the training stream."""
        items = [self.setup.dataset[i] for i in range(min(4, self.batch_size))]
        collate = self.setup.collate_fn or torch.utils.data.default_collate
        return to_device(collate(items), self.device, torch.contiguous_format)


def _resume_candidates(ckpt_dir: str | Path) -> list[Path]:
    return sorted(Path(ckpt_dir).glob(f"{RESUME_PREFIX}*.safetensors"), reverse=True)


def find_resume(ckpt_dir: str | Path) -> Path | None:
    """The newest intact resume checkpoint in ``ckpt_dir`` for ``--resume auto``.

    None when there is none at all (a fresh run). Damaged newer files are skipped with one
    log line each; when every file is damaged, a :class:`CheckpointError` names them all
    with their reasons and how to start over on purpose.
    """
    refused: list[tuple[Path, str]] = []
    for path in _resume_candidates(ckpt_dir):
        try:
            load_checkpoint(path)
        except CheckpointError as exc:
            refused.append((path, str(exc)))
            continue
        for bad, why in refused:
            log.warning("--resume auto: skipped %s (%s)", bad.name, why)
        if refused:
            log.warning(
                "--resume auto: continuing from %s, the newest intact resume checkpoint", path.name
            )
        return path
    if refused:
        reasons = "; ".join(f"{p.name}: {why}" for p, why in refused[:5])
        raise CheckpointError(
            f"--resume auto found {len(refused)} resume checkpoints in {ckpt_dir} and none loads "
            f"({reasons}); to start over on purpose pass --restart"
        )
    return None


def latest_resume(ckpt_dir: str | Path) -> Path | None:
    """Newest ``resume_*.safetensors`` in ``ckpt_dir`` that loads completely, or None.

    Unreadable files are skipped; temporary folders of interrupted writes
    (``.resume_*.tmp``) never match.
    """
    for path in _resume_candidates(ckpt_dir):
        try:
            load_checkpoint(path)
        except CheckpointError:
            continue
        return path
    return None
