"""Training phases of the ``flood`` recipe: masker, domain classifier, painter, discriminators.

Batches are multi-domain: ``{domain: {"x": [B, 3, T, T] in [-1, 1], "s": [B, T, T],
"w": [B, T, T], "h": [B, 1, T, T], ...}}`` for the configured domains (rf, rn, sf, sn).
Model names (``ctx.models``): ``encoder``; ``decoder_<task>`` per task; ``adapt_r`` and
``adapt_s`` (adaptation decoders to the real / simulated look); ``classifier``;
``painter``; ``disc_a_r``, ``disc_a_s``, ``disc_t_f``, ``disc_t_n``.

The losses table (``train.losses``, see :mod:`geogan.recipes.flood.config`):

- ``masker`` phase (optimizer ``masker``): ``G.tasks`` (one loss per task decoder, on the
  domains that have its labels), ``G.classifier`` (the encoder fools the domain classifier:
  its prediction is pushed to the uniform distribution), and for the adaptation decoders
  ``G.gan.a`` (the image decoded to the other realism fools that domain's discriminator),
  ``G.auto.a`` (decoded to its own realism it reproduces the input) and ``G.cycle.a``
  (the other-realism image, encoded and decoded back, reproduces the input).
- ``classifier`` phase: ``C``, the domain classifier on detached features.
- ``painter`` phase: ``G.auto.t`` (flooded tiles with their water masked out are repainted
  to the originals, L1/L2 inside the mask), ``G.gan.t`` (painted composites fool ``t/f``, and
  with ``unflood`` dried composites fool ``t/n``), ``G.cycle.t`` (a painting translated back).
  Not-flooded tiles are painted with masks borrowed from the flooded tiles of the same batch.
- ``discriminators`` phase: ``D``, real and fake terms in the seed's update order (per
  domain batch: real ``a/<own realism>``, fake ``a/<other>``, real ``t/<own>``, fake
  ``t/<other>``).

The painter sees ``x * (1 - m)``: the pixels it repaints are hidden from it, and its output
is composited ``m * painted + (1 - m) * x``, so pixels outside the mask are unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from geogan.losses.adversarial import get_adversarial
from geogan.recipes.flood.config import FloodLosses
from geogan.recipes.flood.data import domain_label
from geogan.training.phases import StepContext

__all__ = [
    "ClassifierPhase",
    "DiscriminatorPhase",
    "MaskerPhase",
    "PainterPhase",
    "borrowed_masks",
    "classifier_loss",
    "compose",
    "dilate",
    "discriminator_terms",
    "paint",
    "recon_loss",
    "task_loss",
    "water_mask",
]

MASK_TAG, NOISE_TAG = 11, 12


# --------------------------------------------------------------------------- loss functions


def task_loss(
    task: str, kind: str, pred: torch.Tensor, target: torch.Tensor, ignore_index: int
) -> torch.Tensor:
    """Loss of one task decoder's output against its labels, ignoring unlabelled pixels.

    ``s``: logits ``[B, K, *S]``, classes ``[B, *S]`` (``ce``: cross-entropy; ``l1``/``l2``:
    softmax against one-hot). ``w``: logit ``[B, 1, *S]``, classes 0/1 ``[B, *S]`` (``ce``:
    binary cross-entropy on the logit; ``l1``/``l2`` on its sigmoid). ``h``/``d``: values
    ``[B, 1, *S]`` against targets ``[B, 1, *S]`` with NaN where unlabelled (``l1``/``l2``).
    0 (with a graph) when no pixel is labelled.
    """
    pred = pred.float()
    if task == "s":
        valid = target != ignore_index
        if not valid.any():
            return pred.sum() * 0
        if kind == "ce":
            return F.cross_entropy(pred, target, ignore_index=ignore_index)
        prob = pred.softmax(dim=1)
        onehot = F.one_hot(torch.where(valid, target, 0), pred.shape[1]).movedim(-1, 1).float()
        err = (prob - onehot).abs() if kind == "l1" else (prob - onehot).square()
        return err.sum(dim=1)[valid].mean()
    if task == "w":
        valid = target != ignore_index
        if not valid.any():
            return pred.sum() * 0
        logit = pred[:, 0]
        tgt = torch.where(valid, target, 0).float()
        if kind == "ce":
            return F.binary_cross_entropy_with_logits(logit[valid], tgt[valid])
        err = logit.sigmoid() - tgt
        return (err.abs() if kind == "l1" else err.square())[valid].mean()
    valid = torch.isfinite(target)
    if not valid.any():
        return pred.sum() * 0
    err = pred[valid] - target[valid]
    return err.abs().mean() if kind == "l1" else err.square().mean()


def recon_loss(
    kind: str, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """L1 or L2 between images ``[B, C, *S]``, inside ``mask [B, 1, *S]`` when given."""
    err = (
        (pred.float() - target.float()).abs()
        if kind == "l1"
        else (pred.float() - target.float()).square()
    )
    if mask is None:
        return err.mean()
    weights = mask.float().expand_as(err)
    return (err * weights).sum() / weights.sum().clamp_min(1.0)


def classifier_loss(kind: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Domain classifier loss: ``logits [B, K]`` against target distributions ``[B, K]``
    (one-hot for the classifier, uniform for the encoder fooling it). ``ce``: cross-entropy
    with the target distribution; ``l1``/``l2``: on the softmax."""
    logits = logits.float()
    if kind == "ce":
        return -(target * logits.log_softmax(dim=1)).sum(dim=1).mean()
    err = logits.softmax(dim=1) - target
    return (err.abs() if kind == "l1" else err.square()).sum(dim=1).mean()


def discriminator_terms(kind: str):
    """``(real_term, fake_term)``: the two halves of the adversarial critic loss ``kind``
    (their sum is :func:`geogan.losses.adversarial.get_adversarial` ``(kind).critic_loss``),
    so that real and fake images of different discriminators can be added one by one."""
    if kind == "lsgan":
        return (
            lambda s: 0.5 * (s.float() - 1).square().mean(),
            lambda s: 0.5 * s.float().square().mean(),
        )
    if kind == "hinge":
        return (lambda s: F.relu(1 - s.float()).mean(), lambda s: F.relu(1 + s.float()).mean())
    if kind == "logistic":
        return (lambda s: F.softplus(-s.float()).mean(), lambda s: F.softplus(s.float()).mean())
    if kind == "wgan":
        return (lambda s: -s.float().mean(), lambda s: s.float().mean())
    get_adversarial(kind)  # raises the ConfigError naming the choices
    raise AssertionError(kind)


# --------------------------------------------------------------------------- masks and painting


def dilate(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """Binary dilation of ``mask [B, 1, *S]`` by a ``(2 * pixels + 1)`` square (max pooling)."""
    if pixels <= 0:
        return mask
    k = 2 * pixels + 1
    pool = F.max_pool2d if mask.ndim == 4 else F.max_pool3d
    return pool(mask, k, stride=1, padding=pixels)


def water_mask(w: torch.Tensor, ignore_index: int, pixels: int = 0) -> torch.Tensor:
    """Float mask ``[B, 1, *S]`` (1 = water) from water labels ``[B, *S]``, dilated."""
    return dilate(((w == 1) & (w != ignore_index)).float().unsqueeze(1), pixels)


def blob_masks(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random smooth blobs ``[B, 1, *S]`` covering 10-50 % of each sample (masks for
    not-flooded tiles when no flooded tile is in the batch)."""
    b, s = like.shape[0], like.shape[2:]
    coarse = torch.randn(
        (b, 1, *[max(n // 8, 1) for n in s]), generator=generator, device=like.device
    )
    mode = "bilinear" if len(s) == 2 else "trilinear"
    field = F.interpolate(coarse, size=s, mode=mode, align_corners=False)
    frac = torch.rand((b,), generator=generator, device=like.device) * 0.4 + 0.1
    q = torch.quantile(field.reshape(b, -1), 1 - frac[:, None].float(), dim=1).diagonal()
    return (field >= q.view(b, *([1] * (field.ndim - 1)))).float()


def borrowed_masks(
    masks: Mapping[str, torch.Tensor], domain: str, like: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Masks for a not-flooded domain's tiles: the flooded tiles' water masks of the same
    realism (else of any flooded domain), rolled by one sample so no tile gets its own
    partner's mask twice; random blobs when the batch has no flooded domain."""
    for src in (domain[0] + "f", "rf", "sf"):
        if src in masks:
            m = masks[src]
            reps = -(-like.shape[0] // m.shape[0])
            return torch.roll(torch.cat([m] * reps)[: like.shape[0]], 1, dims=0)
    return blob_masks(like, generator)


def compose(x: torch.Tensor, painted: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``mask * painted + (1 - mask) * x``; exactly ``x`` wherever ``mask == 0``."""
    return torch.where(mask > 0, mask * painted.to(x.dtype) + (1 - mask) * x, x)


def painter_condition(
    x: torch.Tensor, mask: torch.Tensor, flag: float, seg: torch.Tensor | None = None
) -> torch.Tensor:
    """SPADE condition ``[B, 3 + 1 + 1 (+ K), *S]``: the masked image, the mask, a constant
    plane (1 = paint water, 0 = paint dry land), optionally a land-cover one-hot."""
    parts = [x * (1 - mask), mask, torch.full_like(mask, float(flag))]
    if seg is not None:
        parts.append(seg.to(x.dtype))
    return torch.cat(parts, dim=1)


def paint(
    models: Mapping[str, torch.nn.Module],
    x: torch.Tensor,
    mask: torch.Tensor,
    flag: float | torch.Tensor,
    *,
    seg: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    painter: torch.nn.Module | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(painted [B, 3, *S], composite [B, 3, *S])``: the painter's image from the shared
    encoder's features of the masked image and the SPADE condition, and its composite with
    ``x`` (unchanged outside ``mask``). ``flag``: 1 paints water, 0 dry land (a number, or a
    ``[B]`` tensor)."""
    if torch.is_tensor(flag):
        plane = flag.to(x.dtype).view(-1, *([1] * (x.ndim - 1))).expand_as(mask)
        cond = torch.cat(
            [x * (1 - mask), mask, plane] + ([seg.to(x.dtype)] if seg is not None else []), 1
        )
    else:
        cond = painter_condition(x, mask, flag, seg)
    z = models["encoder"](x * (1 - mask))
    p = painter if painter is not None else models["painter"]
    painted = p(z, cond, noise)
    return painted, compose(x, painted, mask)


def _without_parameter_grads(model: torch.nn.Module, *args: torch.Tensor) -> torch.Tensor:
    """``model(*args)`` with gradients to the inputs only (a model this phase does not step)."""
    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        return model(*args)
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


class _Logs:
    """Loss parts by log level: 0 none, 1 aggregated by family, 2 every term."""

    def __init__(self, level: int) -> None:
        self.level = level
        self.parts: dict[str, torch.Tensor] = {}

    def add(self, family: str, name: str, value: torch.Tensor) -> None:
        if self.level == 0:
            return
        v = value.detach().float()
        if self.level >= 1:
            self.parts[family] = self.parts.get(family, 0) + v
        if self.level >= 2:
            self.parts[f"{family}/{name}"] = self.parts.get(f"{family}/{name}", 0) + v


def _split(t: torch.Tensor, sizes: Sequence[int]) -> list[torch.Tensor]:
    return list(torch.split(t, list(sizes), dim=0))


def _rows(
    have: Sequence[str],
    domains: Sequence[str],
    sizes: Sequence[int],
    z: torch.Tensor,
    skips: Sequence[torch.Tensor],
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The rows of the batch ``z`` (and of each skip) that belong to the domains ``have``
    (the batch is the domains' tiles concatenated in ``domains`` order, ``sizes`` each)."""
    if list(have) == list(domains):
        return z, list(skips)
    keep = [i for i, d in enumerate(domains) if d in have]

    def pick(t: torch.Tensor) -> torch.Tensor:
        parts = _split(t, sizes)
        return torch.cat([parts[i] for i in keep])

    return pick(z), [pick(k) for k in skips]


# --------------------------------------------------------------------------- phases


class MaskerPhase:
    """Encoder + task decoders (+ adaptation decoders): tasks, classifier fooling, adaptation."""

    name, optimizer, updates_ema, repeats = "masker", "masker", False, 1

    def __init__(
        self,
        *,
        tasks: Sequence[str],
        losses: FloodLosses,
        ignore_index: int,
        adaptation: bool,
        classifier: str | None,
        log_level: int,
    ) -> None:
        self.tasks, self.losses, self.ignore = list(tasks), losses, ignore_index
        self.adaptation, self.classifier, self.log_level = adaptation, classifier, log_level
        self.adv = get_adversarial(losses.D.kind)

    def loss(self, batch, ctx: StepContext):
        m, g = ctx.models, self.losses.G
        logs = _Logs(self.log_level)
        domains = list(batch)
        sizes = [batch[d]["x"].shape[0] for d in domains]
        with ctx.autocast():
            x_all = torch.cat([batch[d]["x"] for d in domains])
            z_all, skips_all = m["encoder"](x_all, return_skips=True)
            zs = dict(zip(domains, _split(z_all, sizes)))
            total = z_all.float().sum() * 0
            for task in self.tasks:
                term = getattr(g.tasks, task)
                have = [d for d in domains if task in batch[d]]
                if not have or term.weight == 0:
                    continue
                pred = m[f"decoder_{task}"](*_rows(have, domains, sizes, z_all, skips_all))
                target = torch.cat([batch[d][task] for d in have])
                loss = task_loss(task, term.kind, pred, target, self.ignore)
                total = total + term.weight * loss
                logs.add("tasks", task, loss)
            if self.classifier is not None and g.classifier.weight > 0:
                logits = _without_parameter_grads(m["classifier"], z_all)
                uniform = torch.full_like(logits.float(), 1.0 / logits.shape[1])
                loss = classifier_loss(g.classifier.kind, logits, uniform)
                total = total + g.classifier.weight * loss
                logs.add("classifier", "fool", loss)
            if self.adaptation:
                total = total + self._adaptation(batch, zs, m, logs)
        return total, logs.parts

    def _adaptation(self, batch, zs, m, logs: _Logs) -> torch.Tensor:
        g = self.losses.G
        total = 0
        for d, z in zs.items():
            x, own, other = batch[d]["x"], d[0], "s" if d[0] == "r" else "r"
            if g.auto.a.weight > 0:
                loss = recon_loss(g.auto.a.kind, m[f"adapt_{own}"](z), x)
                total = total + g.auto.a.weight * loss
                logs.add("auto", f"a/{d}", loss)
            if g.gan.a.weight > 0 or g.cycle.a.weight > 0:
                fake = m[f"adapt_{other}"](z)
                if g.gan.a.weight > 0:
                    score = _without_parameter_grads(m[f"disc_a_{other}"], fake)
                    loss = self.adv.generator_loss(score)
                    total = total + g.gan.a.weight * loss
                    logs.add("gan", f"a/{d}", loss)
                if g.cycle.a.weight > 0:
                    back = m[f"adapt_{own}"](m["encoder"](fake))
                    loss = recon_loss(g.cycle.a.kind, back, x)
                    total = total + g.cycle.a.weight * loss
                    logs.add("cycle", f"a/{d}", loss)
        return total


class ClassifierPhase:
    """The domain classifier ``C`` on the encoder's (detached) features."""

    name, optimizer, updates_ema, repeats = "classifier", "classifier", False, 1

    def __init__(self, *, losses: FloodLosses, mode: str, log_level: int) -> None:
        self.losses, self.mode, self.log_level = losses, mode, log_level

    def loss(self, batch, ctx: StepContext):
        m = ctx.models
        logs = _Logs(self.log_level)
        domains = list(batch)
        with ctx.autocast():
            with torch.no_grad():
                z = m["encoder"](torch.cat([batch[d]["x"] for d in domains]))
            logits = m["classifier"](z)
        labels = torch.cat(
            [
                torch.full((batch[d]["x"].shape[0],), domain_label(d, self.mode), dtype=torch.long)
                for d in domains
            ]
        ).to(logits.device)
        target = F.one_hot(labels, logits.shape[1]).float()
        loss = self.losses.C.weight * classifier_loss(self.losses.C.kind, logits, target)
        with torch.no_grad():
            logs.add("classifier", "accuracy", (logits.argmax(1) == labels).float().mean())
        return loss, logs.parts


def _domain_masks(
    batch, ignore: int, dilate_px: int, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Painting masks per domain: flooded tiles their (dilated) water, not-flooded tiles borrowed ones."""
    masks = {
        d: water_mask(b["w"], ignore, dilate_px)
        for d, b in batch.items()
        if d[1] == "f" and "w" in b
    }
    for d, b in batch.items():
        if d not in masks:
            masks[d] = borrowed_masks(masks, d, b["x"], generator)
    return masks


class PainterPhase:
    """The SPADE painter (and the encoder when the translation stage trains it)."""

    name, optimizer, updates_ema, repeats = "painter", "painter", True, 1

    def __init__(
        self,
        *,
        losses: FloodLosses,
        ignore_index: int,
        mask_dilate: int,
        unflood: bool,
        noise_channels: int,
        log_level: int,
    ) -> None:
        self.losses, self.ignore, self.dilate = losses, ignore_index, mask_dilate
        self.unflood, self.noise_channels, self.log_level = unflood, noise_channels, log_level
        self.adv = get_adversarial(losses.D.kind)

    def _noise(
        self, ctx: StepContext, like: torch.Tensor, factor: int, tag: int
    ) -> torch.Tensor | None:
        if not self.noise_channels:
            return None
        shape = (like.shape[0], self.noise_channels, *[n // factor for n in like.shape[2:]])
        return ctx.randn(shape, tag=tag)

    def loss(self, batch, ctx: StepContext):
        m, g = ctx.models, self.losses.G
        logs = _Logs(self.log_level)
        masks = _domain_masks(batch, self.ignore, self.dilate, ctx.rng(MASK_TAG))
        factor = getattr(m["encoder"], "factor", None) or getattr(
            getattr(m["encoder"], "_orig_mod", None), "factor", 4
        )
        domains = list(batch)
        # first pass, one painter call for all: every domain painted wet; with unflood, dry too
        jobs = [(d, 1.0) for d in domains] + ([(d, 0.0) for d in domains] if self.unflood else [])
        x = torch.cat([batch[d]["x"] for d, _ in jobs])
        mk = torch.cat([masks[d] for d, _ in jobs])
        flags = torch.cat(
            [torch.full((batch[d]["x"].shape[0],), f, device=x.device) for d, f in jobs]
        )
        sizes = [batch[d]["x"].shape[0] for d, _ in jobs]
        total = x.new_zeros((), dtype=torch.float32)
        with ctx.autocast():
            painted, comp = paint(m, x, mk, flags, noise=self._noise(ctx, x, factor, NOISE_TAG))
            parts = _split(painted, sizes)
            comps = _split(comp, sizes)
            for k, (d, flag) in enumerate(jobs):
                xd, md = batch[d]["x"], masks[d]
                own = flag == (1.0 if d[1] == "f" else 0.0)  # painting what the tile already is
                if own and g.auto.t.weight > 0:
                    loss = recon_loss(g.auto.t.kind, parts[k], xd, md)
                    total = total + g.auto.t.weight * loss
                    logs.add("auto", f"t/{d}", loss)
                if g.gan.t.weight > 0:
                    disc = m["disc_t_f" if flag == 1.0 else "disc_t_n"]
                    loss = self.adv.generator_loss(_without_parameter_grads(disc, comps[k]))
                    total = total + g.gan.t.weight * loss
                    logs.add("gan", f"t/{'f' if flag == 1.0 else 'n'}/{d}", loss)
            if self.unflood and g.cycle.t.weight > 0:
                # translate back what was translated (wet -> dry or dry -> wet) and compare
                back_jobs = [
                    (k, d, f) for k, (d, f) in enumerate(jobs) if f != (1.0 if d[1] == "f" else 0.0)
                ]
                xb = torch.cat([comps[k] for k, _, _ in back_jobs])
                mb = torch.cat([masks[d] for _, d, _ in back_jobs])
                fb = torch.cat(
                    [
                        torch.full((batch[d]["x"].shape[0],), 1.0 - f, device=x.device)
                        for _, d, f in back_jobs
                    ]
                )
                back, _ = paint(m, xb, mb, fb, noise=self._noise(ctx, xb, factor, NOISE_TAG + 1))
                for (_k, d, _), b in zip(
                    back_jobs, _split(back, [batch[d]["x"].shape[0] for _, d, _ in back_jobs])
                ):
                    loss = recon_loss(g.cycle.t.kind, b, batch[d]["x"], masks[d])
                    total = total + g.cycle.t.weight * loss
                    logs.add("cycle", f"t/{d}", loss)
        return total, logs.parts


class DiscriminatorPhase:
    """The four PatchGAN discriminators, their terms added in the seed's update order.

    For each domain batch in ``rf, rn, sf, sn`` order: real ``D[a][own realism]`` (the
    batch), fake ``D[a][other]`` (the batch decoded to the other realism), real
    ``D[t][own flood state]``, fake ``D[t][other]`` (the batch painted to the other state).
    ``active`` maps a stage name to the parts that run in it (``a``: adaptation, ``t``:
    translation); ``order`` holds the last step's terms as ``(kind, D, domain)``.
    """

    name, optimizer, updates_ema, repeats = "discriminators", "discriminators", False, 1

    def __init__(
        self,
        *,
        losses: FloodLosses,
        ignore_index: int,
        mask_dilate: int,
        active: Mapping[str, Sequence[str]],
        noise_channels: int,
        log_level: int,
    ) -> None:
        self.losses, self.ignore, self.dilate = losses, ignore_index, mask_dilate
        self.active = {k: tuple(v) for k, v in active.items()}
        self.noise_channels, self.log_level = noise_channels, log_level
        self.real, self.fake = discriminator_terms(losses.D.kind)
        self.order: list[tuple[str, str, str]] = []

    def loss(self, batch, ctx: StepContext):
        m, w = ctx.models, self.losses.D.weight
        parts_on = self.active.get(ctx.stage, ("a", "t"))
        logs = _Logs(self.log_level)
        self.order = []
        do_t = "t" in parts_on and "painter" in m
        masks = _domain_masks(batch, self.ignore, self.dilate, ctx.rng(MASK_TAG)) if do_t else {}
        domains = [d for d in ("rf", "rn", "sf", "sn") if d in batch]
        fakes: dict[tuple[str, str], torch.Tensor] = {}
        with ctx.autocast(), torch.no_grad():
            for d in domains:
                x = batch[d]["x"]
                if "a" in parts_on and "adapt_r" in m:
                    other = "s" if d[0] == "r" else "r"
                    fakes[("a", d)] = m[f"adapt_{other}"](m["encoder"](x))
                if do_t and f"disc_t_{'n' if d[1] == 'f' else 'f'}" in m:
                    flag = 0.0 if d[1] == "f" else 1.0
                    noise = None
                    if self.noise_channels:
                        f = getattr(m["encoder"], "factor", 4)
                        noise = ctx.randn(
                            (x.shape[0], self.noise_channels, *[n // f for n in x.shape[2:]]),
                            tag=NOISE_TAG,
                        )
                    fakes[("t", d)] = paint(m, x, masks[d], flag, noise=noise)[1]
        total = batch[domains[0]]["x"].new_zeros((), dtype=torch.float32)
        with ctx.autocast():
            for d in domains:
                x = batch[d]["x"]
                for part in ("a", "t"):
                    if (part == "a" and ("a", d) not in fakes) or (part == "t" and not do_t):
                        continue
                    own, other = (
                        (d[0], "s" if d[0] == "r" else "r")
                        if part == "a"
                        else (d[1], "n" if d[1] == "f" else "f")
                    )
                    real_d, fake_d = f"disc_{part}_{own}", f"disc_{part}_{other}"
                    term = None
                    if real_d in m:  # the seed's order: real first, then fake
                        term = self.real(m[real_d](x))
                        self.order.append(("real", real_d, d))
                    if fake_d in m and (part, d) in fakes:
                        lf = self.fake(m[fake_d](fakes[(part, d)]))
                        term = lf if term is None else term + lf
                        self.order.append(("fake", fake_d, d))
                    if term is not None:
                        total = total + w * term
                        logs.add("d", f"{part}/{d}", term)
        if not self.order:  # nothing to judge in this stage: a zero loss with a graph
            discs = [mod for n, mod in m.items() if n.startswith("disc_")]
            total = total + sum(p.float().sum() * 0 for mod in discs for p in mod.parameters())
        return total, logs.parts
