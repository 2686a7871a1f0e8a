"""The one training loop shared by every recipe.

The Trainer runs the phases a recipe supplies (e.g. 5 critic steps then one
generator step), with mixed precision, EMA, gradient averaging across
``torchrun`` processes, checkpoints (export + resume), exact resume, a NaN/Inf
guard with rollback, graceful preemption on SIGTERM/SIGUSR1, TensorBoard
logging and a progress bar. It never looks at recipe names.
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
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

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
from geogan.core.errors import CheckpointError, TrainingDivergedError
from geogan.core.modules import model_spec
from geogan.core.seeding import derive_seed, get_rng_state, set_rng_state
from geogan.core.tracking import Tracker
from geogan.training.ema import EMA
from geogan.training.phases import ResumableBatchSampler, StepContext, TrainingSetup

log = logging.getLogger(__name__)

PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: "try again", what a requeue script looks for
RESUME_PREFIX = "resume_"
EXPORT_PREFIX = "export_"


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
    if precision == "auto":
        if device.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "bf16" if bf16_supported_on_cpu() else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext, None
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    if device.type == "cpu" and dtype == torch.float16:
        from geogan.core.errors import ConfigError

        raise ConfigError("train.precision=fp16 needs a CUDA device; use bf16 or fp32 on CPU")
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    return (lambda: torch.autocast(device.type, dtype=dtype)), scaler


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


class Trainer:
    """Runs a :class:`TrainingSetup` for ``steps`` steps.

    A *step* runs every phase ``repeats`` times (each repeat on a fresh batch);
    the step counter counts completed steps. Checkpoints are written every
    ``checkpoint_every`` steps and at the end into ``run_dir/checkpoints``;
    ``run_dir/model.safetensors`` is always the newest export.
    """

    def __init__(
        self,
        setup: TrainingSetup,
        *,
        run_dir: str | Path,
        steps: int,
        batch_size: int,
        device: torch.device,
        seed: int = 0,
        precision: str = "fp32",
        channels_last: bool = False,
        ema_decay: float = 0.999,
        ema_start: int = 0,
        checkpoint_every: int = 500,
        keep_checkpoints: int = 3,
        log_every: int = 10,
        image_every: int = 250,
        nan_max_consecutive: int = 5,
        nan_lr_factor: float = 0.5,
        nan_max_rollbacks: int = 2,
        num_workers: int = 0,
        prefetch_factor: int = 4,
        tensorboard: bool = True,
        mlflow: bool = False,
        time_limit_s: float | None = None,
        config: dict[str, Any] | None = None,
        dist_info: DistInfo | None = None,
        progress: bool = True,
    ) -> None:
        self.setup = setup
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.steps = steps
        self.batch_size = batch_size
        self.device = device
        self.seed = seed
        self.precision = precision
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.checkpoint_every = checkpoint_every
        self.keep_checkpoints = keep_checkpoints
        self.log_every = log_every
        self.image_every = image_every
        self.nan_max_consecutive = nan_max_consecutive
        self.nan_lr_factor = nan_lr_factor
        self.nan_max_rollbacks = nan_max_rollbacks
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.time_limit_s = time_limit_s
        self.config = config or {}
        self.dist = dist_info or DistInfo()
        self.progress = progress and self.dist.is_main

        if device.type == "cpu":
            keep_freed_memory()
        self.models = setup.models
        for m in self.models.values():
            m.to(device=device, memory_format=self.memory_format)
        self.optimizers = setup.optimizers
        self.autocast, self.scaler = autocast_factory(device, precision)
        self.ema: EMA | None = None
        if setup.ema_model is not None:
            self.ema = EMA(self.models[setup.ema_model], decay=ema_decay, start_step=ema_start)
        self.tracker = Tracker(
            self.run_dir,
            enabled=self.dist.is_main,
            tensorboard=tensorboard,
            mlflow=mlflow,
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

    def _next_batch(self) -> dict[str, torch.Tensor]:
        if self._loader_iter is None:
            self._make_loader()
        batch = next(self._loader_iter)
        self.batches_consumed += 1
        out = {}
        for k, v in batch.items():
            if isinstance(v, torch.Tensor):
                v = v.to(self.device, non_blocking=True)
                if v.dim() >= 4 and v.is_floating_point():
                    v = v.contiguous(memory_format=self.memory_format) if v.dim() == 4 else v
            out[k] = v
        return out

    # ------------------------------------------------------------ one step
    def _train_step(self) -> dict[str, float]:
        logs: dict[str, float] = {}
        any_bad = False
        for phase in self.setup.phases:
            opt = self.optimizers[phase.optimizer]
            for repeat in range(phase.repeats):
                batch = self._next_batch()
                ctx = StepContext(
                    step=self.step,
                    repeat=repeat,
                    rank=self.dist.rank,
                    seed=self.seed,
                    device=self.device,
                    autocast=self.autocast,
                    models=self.models,
                    memory_format=self.memory_format,
                )
                opt.zero_grad(set_to_none=True)
                loss, parts = phase.loss(batch, ctx)
                bad = not bool(torch.isfinite(loss.detach()).item())
                if not bad:
                    if self.scaler is not None:
                        self.scaler.scale(loss).backward()
                    else:
                        loss.backward()
                    self._average_gradients(opt)
                    if self.scaler is not None:
                        self.scaler.unscale_(opt)
                    bad = not self._grads_finite(opt)
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
        logs["_bad"] = float(any_bad)
        return logs

    def _average_gradients(self, opt: torch.optim.Optimizer) -> None:
        """Mean of gradients over ranks: one flat all-reduce per optimizer.

        We average explicitly rather than wrapping models in DistributedDataParallel:
        the gradient penalty's double backward and phases that run a model without
        stepping it (the critic inside the generator loss) do not fit DDP's reducer.
        """
        if not self.dist.enabled:
            return
        params = [p for g in opt.param_groups for p in g["params"]]
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

    # ------------------------------------------------------- checkpointing
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
            "seed": self.seed,
            "world_size": self.dist.world_size,
            "optimizers": optim_meta,
            "scaler": scaler_meta,
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
        meta = {
            "kind": "export",
            "step": self.step,
            "models": specs,
            "config": self.config,
            **self.setup.export_meta,
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
            o.load_state_dict(unflatten_state(meta["optimizers"][name], tensors))
        if self.scaler is not None and meta.get("scaler") is not None:
            self.scaler.load_state_dict(unflatten_state(meta["scaler"], tensors))
        rng = dict(meta["rng"])
        rng["tensors"] = {k[len("rng/") :]: v for k, v in tensors.items() if k.startswith("rng/")}
        if meta.get("world_size", 1) == self.dist.world_size:
            set_rng_state(rng)
        self.step = int(meta["step"])
        self.batches_consumed = int(meta["batches_consumed"])
        self.lr_scale = float(meta.get("lr_scale", 1.0))
        self.rollbacks = int(meta.get("rollbacks", 0))
        self.skipped_steps = int(meta.get("skipped_steps", 0))
        self._loader_iter = None

    def latest_resume(self) -> Path | None:
        """Newest resume checkpoint in the run directory that loads, or None."""
        return latest_resume(self.ckpt_dir)

    # ------------------------------------------------------- guard / signals
    def _rollback(self) -> None:
        path = self.latest_resume()
        if path is None or self.rollbacks >= self.nan_max_rollbacks:
            raise TrainingDivergedError(
                f"training diverged: {self.bad_in_a_row} steps in a row with non-finite loss or gradients at step "
                f"{self.step} (rollbacks used: {self.rollbacks}); lower the learning rates (train.gen_optim.lr, "
                "train.disc_optim.lr) or use precision fp32"
            )
        rollbacks = self.rollbacks + 1
        scale = self.lr_scale * self.nan_lr_factor
        self.load(path)
        self.rollbacks = rollbacks
        self._set_lr_scale(scale)
        self.bad_in_a_row = 0
        self.tracker.log_scalars(
            self.step, {"guard/rollback": float(rollbacks), "guard/lr_scale": scale}
        )

    def _set_lr_scale(self, scale: float) -> None:
        for o in self.optimizers.values():
            for g in o.param_groups:
                g.setdefault("initial_lr", g["lr"] / self.lr_scale)
                g["lr"] = g["initial_lr"] * scale
        self.lr_scale = scale

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

    # ------------------------------------------------------------------ fit
    def fit(self, resume: str | Path | None = None) -> dict[str, Any]:
        """Train to ``steps``; ``resume`` is a resume checkpoint path or ``"auto"``."""
        if self.dist.is_main:
            # temporary folders of writes killed in an earlier run (never read as checkpoints)
            for folder in (self.run_dir, self.ckpt_dir):
                for stale in remove_stale_temporaries(folder):
                    log.info("removed %s left by an interrupted write", stale)
        if resume == "auto":
            resume = self.latest_resume()
        if resume is not None:
            self.load(resume)
            if self.lr_scale != 1.0:
                self._set_lr_scale(self.lr_scale)
        start_step, t0 = self.step, time.perf_counter()
        stopped = "completed"
        progress = _progress_bar(self.progress)
        task = (
            progress.add_task("train", total=self.steps, completed=self.step, losses="", rate="")
            if progress
            else None
        )
        try:
            with self._signals(), progress or contextlib.nullcontext():
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
                    if progress:
                        shown = "  ".join(
                            f"{k.split('/')[0][:3]}={v:.3g}"
                            for k, v in logs.items()
                            if k.endswith("/loss")
                        )
                        rate = (self.step - start_step) / max(time.perf_counter() - t0, 1e-9)
                        progress.update(
                            task, completed=self.step, losses=shown, rate=f"{rate:.2f} it/s"
                        )
                    if self.step % self.checkpoint_every == 0 and self.step < self.steps:
                        self.save()
                    if self._stop_signal is not None:
                        self.save()
                        raise Preempted(
                            f"received signal {self._stop_signal} at step {self.step}: resume checkpoint written; "
                            "continue with --resume auto"
                        )
                    if (
                        self.time_limit_s is not None
                        and time.perf_counter() - t0 > self.time_limit_s
                    ):
                        stopped = "time_limit"
                        break
            self.save()
        finally:
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
            "run_dir": str(self.run_dir),
        }

    @torch.no_grad()
    def _log_images(self) -> None:
        batch = self._peek_batch()
        images = self.setup.image_fn(
            {**self.models, "ema": self.ema.shadow if self.ema else None}, batch
        )
        if images is not None and math.prod(images.shape) > 0:
            self.tracker.log_images(self.step, "samples", images.float().cpu())

    def _peek_batch(self) -> dict[str, torch.Tensor]:
        """A fixed batch for image logs, drawn outside the training stream."""
        items = [self.setup.dataset[i] for i in range(min(4, self.batch_size))]
        collate = self.setup.collate_fn or torch.utils.data.default_collate
        return {
            k: v.to(self.device) if torch.is_tensor(v) else v for k, v in collate(items).items()
        }


def latest_resume(ckpt_dir: str | Path) -> Path | None:
    """Newest ``resume_*.safetensors`` in ``ckpt_dir`` that loads completely, or None.

    Unreadable files are skipped; temporary folders of interrupted writes
    (``.resume_*.tmp``) never match.
    """
    for path in sorted(Path(ckpt_dir).glob(f"{RESUME_PREFIX}*.safetensors"), reverse=True):
        try:
            load_checkpoint(path)
        except CheckpointError:
            continue
        return path
    return None


def _progress_bar(enabled: bool):
    if not enabled:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("[cyan]{task.fields[losses]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        transient=False,
    )


def unwrap(model: nn.Module) -> nn.Module:
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)
