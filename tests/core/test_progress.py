"""The shared progress bar: rate, ETA, done/total; the trainer's time-limited bar counts the limit."""

from __future__ import annotations

import io
import os
import sys

import pytest
import torch
from rich.console import Console

from geogan.core import progress as progress_mod
from geogan.core.progress import ProgressBar, track

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "training"))
from toy import make_setup  # noqa: E402


class FakeClock:
    """``time.perf_counter`` under the test's control (seconds)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(progress_mod.time, "perf_counter", c)
    return c


def _console() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=160, color_system=None)


def test_rate_and_eta_follow_the_direct_formula(clock):
    bar = ProgressBar("generate", 10, unit="times", enabled=False).start()
    assert bar.rate == 0.0 and bar.remaining_s is None
    clock.now += 4.0
    bar.update(2)
    # 2 times in 4 s: 0.5 times/s, 8 left -> 16 s
    assert bar.rate == pytest.approx(0.5)
    assert bar.remaining_s == pytest.approx(16.0)
    clock.now += 4.0
    bar.advance(6)
    assert bar.completed == 8 and bar.rate == pytest.approx(1.0)
    assert bar.remaining_s == pytest.approx(2.0)


def test_rendered_bar_shows_count_rate_and_eta():
    console = _console()
    bar = ProgressBar("score t2m", 5, unit="times", console=console, transient=False)
    with bar:
        for _ in range(3):
            bar.advance()
    text = console.file.getvalue()
    assert "score t2m" in text and "3/5" in text
    assert "times/s" in text and "ETA" in text


def test_extra_fields_and_caller_rate_are_shown():
    console = _console()
    bar = ProgressBar(
        "train", 60, unit="s", count=False, fields=("steps",), console=console, transient=False
    )
    with bar:
        bar.update(30, rate="2.50 it/s", steps="75/1000")
    text = console.file.getvalue()
    assert "75/1000" in text and "2.50 it/s" in text
    assert "30/60" not in text  # count=False: seconds of the limit are not shown as a count


def test_disabled_bar_writes_nothing(capsys):
    with ProgressBar("quiet", 3, enabled=False) as bar:
        bar.advance(3)
    assert bar.completed == 3
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_track_yields_every_item_and_counts_them(monkeypatch):
    seen = []
    bars = []
    real = ProgressBar

    class Recording(real):
        def __init__(self, *a, **k):
            super().__init__(*a, **k, console=_console())
            bars.append(self)

    monkeypatch.setattr(progress_mod, "ProgressBar", Recording)
    for x in track(range(4), "painting", unit="images"):
        seen.append(x)
    assert seen == [0, 1, 2, 3]
    assert bars[0].total == 4 and bars[0].completed == 4 and bars[0].unit == "images"
    assert list(track(iter("ab"), "off", enabled=False)) == ["a", "b"]


def _recording_trainer_bar(monkeypatch):
    from geogan.training import trainer as trainer_mod

    bars = []
    real = trainer_mod.ProgressBar

    def build(*a, **k):
        bar = real(*a, **{**k, "console": _console()})
        bars.append(bar)
        return bar

    monkeypatch.setattr(trainer_mod, "ProgressBar", build)
    return bars


def _fit(tmp_path, steps, **kw) -> None:
    from geogan.training.trainer import Trainer

    Trainer(
        make_setup(),
        run_dir=tmp_path,
        steps=steps,
        batch_size=2,
        device=torch.device("cpu"),
        seed=3,
        tensorboard=False,
        progress=True,
        **kw,
    ).fit()


def test_time_limited_training_bar_counts_the_limit_not_the_steps(tmp_path, monkeypatch):
    bars = _recording_trainer_bar(monkeypatch)
    limit_s = 30.0
    _fit(tmp_path, 5, time_limit_s=limit_s)
    (bar,) = bars
    # the bar's total is the limit in seconds: its ETA is the end of the limit
    assert bar.total == pytest.approx(limit_s) and bar.unit == "s"
    assert 0 < bar.completed <= limit_s
    text = bar._console.file.getvalue()
    assert "5/5" in text and "it/s" in text and "ETA" in text


def test_step_limited_training_bar_counts_steps(tmp_path, monkeypatch):
    bars = _recording_trainer_bar(monkeypatch)
    _fit(tmp_path, 4)
    (bar,) = bars
    assert bar.total == 4 and bar.completed == 4 and bar.unit == "steps"
