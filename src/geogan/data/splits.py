"""Train/test splits of a time axis: the last share of each group of times is held out."""

from __future__ import annotations

import math

import numpy as np

from geogan.config.schema import SplitConfig
from geogan.core.errors import DataError


def split_times(times: np.ndarray, split: SplitConfig) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices into sorted ``times`` (``[T]``): the last share of each group is test.

    ``group_by: day`` groups by UTC calendar day (needs datetime64 times); ``all`` is one group.
    A group of ``n`` times holds out its last ``floor(n * holdout_fraction + 0.5)``.
    """
    times = np.asarray(times)
    if split.group_by == "day":
        if not np.issubdtype(times.dtype, np.datetime64):
            raise DataError(
                f"data.split.group_by is 'day' but the time axis is not dates ({times.dtype}); "
                "use data.split.group_by: all"
            )
        _, group = np.unique(times.astype("datetime64[D]"), return_inverse=True)
    else:
        group = np.zeros(times.size, dtype=np.int64)
    train, test = [], []
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        n_test = int(math.floor(members.size * split.holdout_fraction + 0.5))
        train.append(members[: members.size - n_test])
        test.append(members[members.size - n_test :])
    train_idx = np.sort(np.concatenate(train)) if train else np.zeros(0, dtype=np.int64)
    test_idx = np.sort(np.concatenate(test)) if test else np.zeros(0, dtype=np.int64)
    return train_idx.astype(np.int64), test_idx.astype(np.int64)
