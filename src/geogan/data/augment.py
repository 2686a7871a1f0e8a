"""Random symmetry augmentations of ``[C, *S]`` samples, with vector channels transformed as vectors.

A sample is one or more arrays ``[C, *S]`` (numpy arrays or torch tensors) sharing a spatial
frame: ``S = (x,)``, ``(y, x)`` or ``(z, y, x)``; axis names follow
:data:`~geogan.config.schema.SPATIAL_AXES` (``x`` is the last axis, ``y`` the one before,
``z`` the one before that). :func:`draw_augmentation` draws one :class:`Augmentation` from
an :class:`~geogan.config.schema.AugmentConfig`; :meth:`Augmentation.apply` applies it to
each array of the sample -- the truth, the inputs, the constants, the mask -- including
arrays on a grid coarser by an integer factor per axis (an 8x coarser input, say).

The transform, in this order:

1. roll: a circular shift by ``shifts[a]`` pixels of the drawn grid along each spatial axis
   ``a`` (0 on axes not in ``roll_axes``); an array ``f`` times coarser along ``a`` is
   shifted by ``shifts[a] // f`` (the draw makes shifts multiples of ``roll_multiple``,
   so pass the coarse factor there);
2. flips: reverse axis x, then y, then z, where drawn;
3. rot90: ``k`` quarter turns in the y-x plane, exactly ``np.rot90(a, k, axes=(-2, -1))``
   (only drawn for square y-x extents);
4. permutation: spatial axis ``i`` of the result is axis ``perm[i]`` before it (a
   transpose of the spatial axes; only among axes of equal extent).

Vectors (:class:`~geogan.config.schema.VectorConfig`): a channel named as the component of a
vector along axis ``a`` transforms as that component of a vector field: flipping ``a``
negates it, and permuting axes permutes the components with them. Every step above is a
composition of elementary moves -- flip of one axis, transpose of two -- (rot90 by 1 is a
flip of x then a transpose of y and x, by 2 flips y and x, by 3 a transpose then a flip of
x, as numpy does it), and the vector rule is applied to each elementary move in turn, so
the component mixing is right by construction (tested against gradients of a potential).

Random draws, in this fixed order (a draw depends only on the generator's state, the
spatial rank and the configuration):

1. ``rng.integers(0, 2, size=2)``: flip x, flip y (drawn whatever ``cfg.flip``);
2. ``int(rng.integers(0, 4))``: quarter turns (drawn whatever ``cfg.rot90``);
3. 3D only: ``rng.integers(0, 2, size=1)``: flip z (drawn whatever ``cfg.flip``);
4. ``cfg.permute`` only: ``rng.permutation(n)`` over the ``n`` permuted axes taken in
   the order x, y, z;
5. for each roll axis in the order x, y, z: ``int(rng.integers(0, L // m))``, the shift
   in units of ``m = roll_multiple`` along an axis of extent ``L``.

In 2D without permutation or rolls these are exactly the draws and the transform of
recipe 1's original flip/rot90 augmentation, so its training streams are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from geogan.config.schema import SPATIAL_AXES, AugmentConfig, VectorConfig
from geogan.core.errors import ConfigError, DataError

__all__ = ["Augmentation", "axis_index", "draw_augmentation"]


def axis_index(name: str, ndim: int) -> int:
    """Position of spatial axis ``name`` (``"x"``, ``"y"``, ``"z"``) within ``S`` of rank ``ndim``."""
    if name not in SPATIAL_AXES:
        raise ConfigError(f"unknown spatial axis {name!r}; choose from {', '.join(SPATIAL_AXES)}")
    back = SPATIAL_AXES.index(name)
    if back >= ndim:
        raise ConfigError(
            f"axis {name!r} does not exist in {ndim}-D data (axes {', '.join(SPATIAL_AXES[:ndim])})"
        )
    return ndim - 1 - back


def _canonical(names: Sequence[str] | None, ndim: int) -> list[str]:
    """``names`` (None: every axis of rank ``ndim``) in the order x, y, z, checked to exist."""
    chosen = SPATIAL_AXES[:ndim] if names is None else names
    for n in chosen:
        axis_index(n, ndim)
    return [n for n in SPATIAL_AXES if n in chosen]


def _as_multiples(value: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    values = (value,) * ndim if isinstance(value, (int, np.integer)) else tuple(value)
    if len(values) != ndim or any(int(v) != v or v < 1 for v in values):
        raise ConfigError(
            f"roll_multiple must be a positive integer or one per spatial axis ({ndim}), got {value!r}"
        )
    return tuple(int(v) for v in values)


@dataclass(frozen=True)
class Augmentation:
    """One drawn transform of a sample (see the module docstring for the order of the steps).

    Fields (spatial axes indexed ``0 .. ndim - 1`` within ``S``, so in 3D 0 is z, 2 is x):

    - ``shape``: the spatial shape ``S`` it was drawn for (the finest grid of the sample);
    - ``flips``: flip per spatial axis;
    - ``k``: quarter turns in the y-x plane (0 .. 3);
    - ``perm``: spatial axis ``i`` of the result is axis ``perm[i]`` of its input;
    - ``shifts``: circular shift per spatial axis, in pixels of ``shape``.
    """

    shape: tuple[int, ...]
    flips: tuple[bool, ...]
    k: int = 0
    perm: tuple[int, ...] | None = None
    shifts: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        ndim = len(self.shape)
        if len(self.flips) != ndim:
            raise ValueError(f"flips {self.flips} must have one entry per spatial axis ({ndim})")
        if self.perm is not None and sorted(self.perm) != list(range(ndim)):
            raise ValueError(f"perm {self.perm} is not a permutation of {ndim} axes")
        if self.shifts is not None and len(self.shifts) != ndim:
            raise ValueError(f"shifts {self.shifts} must have one entry per spatial axis")
        if self.k and ndim < 2:
            raise ValueError("rot90 needs at least 2 spatial axes")

    @property
    def ndim(self) -> int:
        """Spatial rank."""
        return len(self.shape)

    @property
    def flip_lr(self) -> bool:
        """Flip of x (left-right)."""
        return self.flips[-1]

    @property
    def flip_ud(self) -> bool:
        """Flip of y (up-down)."""
        return self.ndim >= 2 and self.flips[-2]

    def moves(self) -> list[tuple[str, int, int]]:
        """The elementary moves after the roll, in order: ``("flip", a, a)`` or ``("swap", a, b)``.

        Axes are spatial indices ``0 .. ndim - 1``. A permutation is written as a sequence of
        transpositions (selection sort), each of which is a swap of two axes.
        """
        nd = self.ndim
        x, y = nd - 1, nd - 2
        out: list[tuple[str, int, int]] = []
        for a in (x, y, nd - 3):  # flip x, then y, then z
            if a >= 0 and self.flips[a]:
                out.append(("flip", a, a))
        k = self.k % 4
        # numpy's rot90 with axes=(y, x): k=1 flip x, transpose; k=2 flip y, flip x;
        # k=3 transpose, flip x
        if k == 1:
            out += [("flip", x, x), ("swap", y, x)]
        elif k == 2:
            out += [("flip", y, y), ("flip", x, x)]
        elif k == 3:
            out += [("swap", y, x), ("flip", x, x)]
        if self.perm is not None:
            current = list(range(nd))  # current[i]: original-frame axis now at position i
            for i, want in enumerate(self.perm):
                j = current.index(want)
                if j != i:
                    out.append(("swap", i, j))
                    current[i], current[j] = current[j], current[i]
        return out

    def apply(
        self,
        x: Any,
        channels: Sequence[str] | None = None,
        vectors: Sequence[VectorConfig] = (),
    ) -> Any:
        """Augment ``x``: numpy ``[..., *S']`` or a torch tensor, ``S'`` = ``shape`` or coarser.

        Args:
            x: ``[..., C, *S']`` with ``len(S') == ndim``; each extent of ``S'`` divides the
                drawn ``shape`` (a coarser grid of the same sample; an extent ``f`` times
                smaller is rolled by ``shift // f``, which must be whole).
            channels: names of the ``C`` channels (axis ``-ndim - 1``); needed for ``vectors``.
            vectors: vector fields among the channels; their components transform as vectors.
                A vector none of whose components is in ``channels`` is ignored (e.g. a mask).

        Returns:
            The augmented array of the same kind (numpy: C-contiguous; for odd ``k`` or a
            permutation the spatial extents are permuted accordingly).
        """
        nd = self.ndim
        is_torch = not isinstance(x, np.ndarray) and type(x).__module__.startswith("torch")
        if not is_torch:
            x = np.asarray(x)
        if x.ndim < nd:
            raise DataError(
                f"array of shape {tuple(x.shape)} has fewer dims than the {nd} spatial axes of the augmentation"
            )
        lead = x.ndim - nd
        mixing = self._channel_mixing(x, channels, vectors)
        shifts = self._shifts_for(tuple(int(s) for s in x.shape[lead:]))
        if any(shifts):
            axes = [lead + a for a, s in enumerate(shifts) if s]
            amounts = [s for s in shifts if s]
            if is_torch:
                import torch

                x = torch.roll(x, shifts=amounts, dims=axes)
            else:
                x = np.roll(x, amounts, axis=axes)
        for kind, a, b in self.moves():
            if kind == "flip":
                if is_torch:
                    import torch

                    x = torch.flip(x, dims=[lead + a])
                else:
                    x = np.flip(x, axis=lead + a)
            else:
                x = (
                    x.transpose(lead + a, lead + b)
                    if is_torch
                    else np.swapaxes(x, lead + a, lead + b)
                )
        if mixing is not None:
            x = self._mix(x, lead - 1, *mixing, is_torch=is_torch)
        return x.contiguous() if is_torch else np.ascontiguousarray(x)

    # ------------------------------------------------------------------ helpers

    def _shifts_for(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        """Shifts in pixels of an array with spatial shape ``spatial`` (coarser or equal)."""
        shifts = self.shifts or (0,) * self.ndim
        out = []
        for a, (fine, n, s) in enumerate(zip(self.shape, spatial, shifts)):
            if n == fine:
                out.append(int(s))
                continue
            if n < 1 or fine % n:
                raise DataError(
                    f"array spatial shape {spatial} is not the augmentation's grid {self.shape} "
                    "or an integer coarsening of it"
                )
            factor = fine // n
            if s % factor:
                raise DataError(
                    f"roll of {s} pixels along spatial axis {a} is not a multiple of the coarsening "
                    f"factor {factor}; draw the augmentation with roll_multiple={factor}"
                )
            out.append(int(s) // factor)
        return tuple(out)

    def _channel_mixing(
        self, x: Any, channels: Sequence[str] | None, vectors: Sequence[VectorConfig]
    ) -> tuple[list[int], list[int]] | None:
        """``(source channel per channel, channels to negate)``, or None when nothing mixes."""
        if not vectors:
            return None
        nd = self.ndim
        if channels is None:
            raise ConfigError("vector channels need channel names: pass channels=[...] to apply()")
        channels = list(channels)
        if x.ndim < nd + 1 or x.shape[-nd - 1] != len(channels):
            raise DataError(
                f"{len(channels)} channel names for an array of shape {tuple(x.shape)}; "
                f"expected [..., {len(channels)}, *S] with {nd} spatial axes"
            )
        source = list(range(len(channels)))
        negate: list[int] = []
        moves = self.moves()
        for vec in vectors:
            present = [c for c in vec.components if c in channels]
            if not present:
                continue  # this array carries no component of the vector (e.g. a mask)
            missing = [c for c in vec.components if c not in channels]
            if missing:
                raise ConfigError(
                    f"vector {vec.components} has components {missing} missing from the channels "
                    f"{channels}; every component of a vector must be in the same array"
                )
            along = {
                axis_index(ax, nd): channels.index(c) for c, ax in zip(vec.components, vec.axes)
            }
            # src[a] = (b, sign): the component along axis a now is sign * the original along b
            src = {a: (a, 1) for a in range(nd)}
            for kind, a, b in moves:
                if kind == "flip":
                    src[a] = (src[a][0], -src[a][1])
                else:
                    src[a], src[b] = src[b], src[a]
            for a, ch in along.items():
                b, sign = src[a]
                if b not in along:
                    raise ConfigError(
                        f"vector {vec.components} has no component along {SPATIAL_AXES[nd - 1 - b]}, "
                        f"which the augmentation turns into {SPATIAL_AXES[nd - 1 - a]}; add it "
                        "or restrict augment.rot90/permute"
                    )
                source[ch] = along[b]
                if sign < 0:
                    negate.append(ch)
            # src is a bijection, so mapping the vector's axes into themselves makes the
            # restriction a permutation of its components: nothing is lost
        if source == list(range(len(channels))) and not negate:
            return None
        return source, negate

    @staticmethod
    def _mix(x: Any, axis: int, source: list[int], negate: list[int], *, is_torch: bool) -> Any:
        if is_torch:
            import torch

            idx = torch.as_tensor(source, device=x.device)
            out = torch.index_select(x, axis, idx)
            if negate:
                neg = torch.as_tensor(negate, device=x.device)
                out.index_copy_(axis, neg, -torch.index_select(out, axis, neg))
            return out
        out = np.take(x, source, axis=axis)
        if negate:
            sl: list[Any] = [slice(None)] * out.ndim
            sl[axis] = negate
            out[tuple(sl)] = -out[tuple(sl)]
        return out


def draw_augmentation(
    rng: np.random.Generator,
    cfg: AugmentConfig,
    spatial_shape: Sequence[int],
    *,
    roll_multiple: int | Sequence[int] = 1,
) -> Augmentation:
    """Draw one augmentation for a sample whose finest spatial shape is ``spatial_shape``.

    Args:
        rng: the sample's generator; the draws are listed in the module docstring.
        cfg: which transforms are allowed.
        spatial_shape: ``S`` of the finest array of the sample (``(y, x)`` or ``(z, y, x)``).
        roll_multiple: rolls are multiples of this many pixels (one value, or one per spatial
            axis in ``S`` order). Pass the coarsening factor of the sample's coarsest array
            (e.g. 8 when the input is 8x coarser) so that the coarse array can be rolled by a
            whole number of its own pixels, consistently with the fine one. Each rolled
            axis's extent must be a multiple of it; the shift is uniform over those multiples.

    Raises:
        ConfigError: an axis of the configuration does not exist in this rank, or a vector
            names one; DataError: a permutation of unequal extents, or a roll axis whose
            extent is not a multiple of ``roll_multiple``.
    """
    shape = tuple(int(s) for s in spatial_shape)
    nd = len(shape)
    if not 1 <= nd <= len(SPATIAL_AXES):
        raise DataError(f"augmentation needs 1 to 3 spatial axes, got shape {shape}")
    multiples = _as_multiples(roll_multiple, nd)
    flip_names = _canonical(cfg.flip_axes, nd)
    for vec in cfg.vectors:
        for ax in vec.axes:
            axis_index(ax, nd)
    flips = [False] * nd
    draws = rng.integers(0, 2, size=2)  # x, y: the original recipe-1 draws
    k = int(rng.integers(0, 4))
    for a, bit in zip((nd - 1, nd - 2), draws):
        if a >= 0:
            flips[a] = bool(bit)
    if nd >= 3:
        flips[nd - 3] = bool(rng.integers(0, 2, size=1)[0])
    flips = [
        bool(cfg.flip and f and SPATIAL_AXES[nd - 1 - a] in flip_names) for a, f in enumerate(flips)
    ]
    square = nd >= 2 and shape[-1] == shape[-2]
    perm = None
    if cfg.permute:
        names = _canonical(cfg.permute_axes, nd)
        axes = [axis_index(n, nd) for n in names]
        sizes = {shape[a] for a in axes}
        if len(sizes) > 1:
            raise DataError(
                f"augment.permute needs equal extents along {', '.join(names)}, got shape {shape}; "
                "use cubic crops or set augment.permute_axes to axes of equal extent"
            )
        order = rng.permutation(len(axes))
        full = list(range(nd))
        for i, j in zip(axes, order):
            full[i] = axes[int(j)]
        perm = tuple(full) if full != list(range(nd)) else None
    shifts = [0] * nd
    for name in _canonical(cfg.roll_axes, nd) if cfg.roll_axes else ():
        a = axis_index(name, nd)
        m = multiples[a]
        if shape[a] % m:
            raise DataError(
                f"cannot roll axis {name} of extent {shape[a]} in steps of {m} (the coarse factor); "
                "use an extent that is a multiple of it"
            )
        shifts[a] = m * int(rng.integers(0, shape[a] // m))
    return Augmentation(
        shape=shape,
        flips=tuple(flips),
        k=k if (cfg.rot90 and square) else 0,
        perm=perm,
        shifts=tuple(shifts) if any(shifts) else None,
    )
