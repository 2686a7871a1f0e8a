"""Baselines and the judge network of the ``flood`` recipe's verification.

Masker baselines: the plain U-Net segmenter (a ``model.kind: unet`` run, scored from its
export) and :class:`ColourThreshold`, a water detector on colour alone. Painter baselines:
:func:`mean_colour_fill` (the mean water colour of the training tiles) and
:func:`telea_fill` (OpenCV's Telea fast-marching inpainting).

:class:`Judge` is a small fully convolutional water/land classifier that geogan trains on
the real training tiles; its per-pixel water probability and its last hidden features (32
channels) score the painted water (the Frechet distance is on *these* features, not on
Inception's: it is not an FID).

Images are ``[3, H, W]`` float32 RGB in [0, 1]; masks ``[H, W]`` (1 = water / paint here).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from geogan.core.errors import DataError
from geogan.core.progress import track
from geogan.core.seeding import derive_seed

__all__ = ["ColourThreshold", "Judge", "mean_colour_fill", "telea_fill", "train_judge"]


class ColourThreshold:
    """Water where ``blue - red > a`` and ``blue - green > b`` and brightness ``< c``.

    ``fit`` grid-searches ``(a, b, c)`` for the best water F0.5 on labelled training pixels.
    """

    def __init__(self, a: float = 0.05, b: float = 0.0, c: float = 0.6) -> None:
        self.a, self.b, self.c = a, b, c

    def predict(self, image: np.ndarray) -> np.ndarray:
        r, g, b = image[0], image[1], image[2]
        return ((b - r > self.a) & (b - g > self.b) & (image.mean(axis=0) < self.c)).astype(
            np.float32
        )

    def fit(
        self,
        images: Sequence[np.ndarray],
        water: Sequence[np.ndarray],
        max_pixels: int = 400_000,
        seed: int = 0,
    ) -> ColourThreshold:
        """Choose ``(a, b, c)`` maximising pooled F0.5 on the pixels of ``images`` (labels
        ``water`` 0/1, other values not used)."""
        px = np.concatenate([im.reshape(3, -1) for im in images], axis=1)
        lab = np.concatenate([np.asarray(w).reshape(-1) for w in water])
        ok = (lab == 0) | (lab == 1)
        px, lab = px[:, ok], lab[ok].astype(bool)
        if lab.size == 0 or not lab.any():
            raise DataError("the colour-threshold baseline needs training pixels labelled water")
        if lab.size > max_pixels:
            idx = np.random.default_rng(seed).choice(lab.size, max_pixels, replace=False)
            px, lab = px[:, idx], lab[idx]
        br, bg, bright = px[2] - px[0], px[2] - px[1], px.mean(axis=0)
        best = (-1.0, self.a, self.b, self.c)
        for a in np.arange(-0.1, 0.21, 0.02):
            sa = br > a
            for b in np.arange(-0.1, 0.21, 0.02):
                sab = sa & (bg > b)
                for c in (0.2, 0.3, 0.4, 0.5, 0.7, 1.01):
                    p = sab & (bright < c)
                    tp = float((p & lab).sum())
                    fp = float((p & ~lab).sum())
                    fn = float((~p & lab).sum())
                    if tp == 0:
                        continue
                    prec, rec = tp / (tp + fp), tp / (tp + fn)
                    f = 1.25 * prec * rec / (0.25 * prec + rec)
                    if f > best[0]:
                        best = (f, float(a), float(b), float(c))
        _, self.a, self.b, self.c = best
        return self


def mean_colour_fill(image: np.ndarray, mask: np.ndarray, colour: Sequence[float]) -> np.ndarray:
    """``image`` with the mean water ``colour`` (RGB in [0, 1]) where ``mask > 0`` (blended by
    the mask's value), unchanged elsewhere."""
    m = np.asarray(mask, np.float32)[None]
    fill = np.asarray(colour, np.float32)[:, None, None]
    return np.where(m > 0, m * fill + (1 - m) * image, image).astype(np.float32)


def telea_fill(image: np.ndarray, mask: np.ndarray, radius: int = 3) -> np.ndarray:
    """OpenCV's Telea inpainting of the ``mask > 0`` pixels (8-bit, as OpenCV needs), the
    other pixels kept exactly."""
    import cv2

    u8 = np.clip(np.round(np.moveaxis(image, 0, -1) * 255.0), 0, 255).astype(np.uint8)
    m8 = (np.asarray(mask) > 0).astype(np.uint8)
    filled = cv2.inpaint(np.ascontiguousarray(u8[..., ::-1]), m8, radius, cv2.INPAINT_TELEA)[
        ..., ::-1
    ]
    out = np.moveaxis(filled.astype(np.float32) / 255.0, -1, 0)
    return np.where(m8[None] > 0, out, image).astype(np.float32)


class Judge(nn.Module):
    """Water/land classifier ``[B, 3, H, W]`` (RGB in [0, 1]) -> ``(logit [B, 1, H, W],
    features [B, F, H, W])``: four 3x3 convolutions (dilations 1, 2, 4, 1; receptive field
    17 pixels), ReLU, a 1x1 head."""

    def __init__(self, filters: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch = 3
        for d in (1, 2, 4, 1):
            layers += [nn.Conv2d(ch, filters, 3, padding=d, dilation=d), nn.ReLU()]
            ch = filters
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(filters, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.body(x * 2 - 1)
        return self.head(f), f


def train_judge(
    images: Sequence[np.ndarray],
    water: Sequence[np.ndarray],
    *,
    steps: int,
    filters: int = 32,
    crop: int = 32,
    batch: int = 16,
    seed: int = 0,
    progress: bool = False,
) -> Judge:
    """Train a :class:`Judge` on tiles ``images`` with water labels ``water`` (0/1; other
    values ignored), random crops and flips; deterministic for a seed."""
    if not images:
        raise DataError("the judge needs labelled training tiles")
    torch.manual_seed(derive_seed(seed, 17))
    judge = Judge(filters)
    opt = torch.optim.Adam(judge.parameters(), lr=2e-3)
    rng = np.random.default_rng(derive_seed(seed, 18))
    crop = min(crop, *[min(im.shape[1:]) for im in images])
    for _ in track(range(steps), "training the judge", enabled=progress, unit="steps"):
        xs, ys = [], []
        for _ in range(batch):
            k = int(rng.integers(len(images)))
            im, w = images[k], np.asarray(water[k])
            r = int(rng.integers(im.shape[1] - crop + 1))
            c = int(rng.integers(im.shape[2] - crop + 1))
            x, y = im[:, r : r + crop, c : c + crop], w[r : r + crop, c : c + crop]
            if rng.integers(2):
                x, y = x[:, :, ::-1], y[:, ::-1]
            xs.append(np.ascontiguousarray(x))
            ys.append(np.ascontiguousarray(y))
        x = torch.from_numpy(np.stack(xs)).float()
        y = torch.from_numpy(np.stack(ys).astype(np.float32))
        logit, _ = judge(x)
        valid = (y == 0) | (y == 1)
        loss = nn.functional.binary_cross_entropy_with_logits(logit[:, 0][valid], y[valid])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return judge.eval().requires_grad_(False)


@torch.no_grad()
def judge_outputs(judge: Judge, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(water probability [H, W], features [F, H, W])`` of one image."""
    logit, f = judge(torch.from_numpy(np.ascontiguousarray(image, np.float32))[None])
    return logit[0, 0].sigmoid().numpy(), f[0].numpy()


def patch_features(
    features: np.ndarray, mask: np.ndarray, patch: int, min_cover: float
) -> np.ndarray:
    """Feature vectors ``[N, F]`` of the ``patch x patch`` windows (stride ``patch``) whose
    share of mask pixels is at least ``min_cover``: the mean feature over the window's mask
    pixels."""
    f, (h, w) = features, mask.shape
    out = []
    for r in range(0, h - patch + 1, patch):
        for c in range(0, w - patch + 1, patch):
            m = mask[r : r + patch, c : c + patch] > 0
            if m.mean() >= min_cover:
                out.append(f[:, r : r + patch, c : c + patch][:, m].mean(axis=1))
    return np.asarray(out, np.float64).reshape(-1, f.shape[0])
