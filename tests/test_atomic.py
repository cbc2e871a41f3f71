"""Atomic writes leave files others can read (the mode follows the umask, as open() would); the Python API
takes what the README and docs/guide/predict.md show."""

from __future__ import annotations

import subprocess
import sys

import pytest

import viper


@pytest.mark.parametrize(("umask", "mode"), [(0o022, "0o644"), (0o002, "0o664"), (0o077, "0o600")])
def test_written_files_honour_the_umask(tmp_path, umask, mode):
    path = tmp_path / "out" / "metrics.json"
    code = (f"import os; os.umask({umask}); from viper.atomic import atomic_write_text; "
            f"atomic_write_text({str(path)!r}, '{{}}'); print(oct(os.stat({str(path)!r}).st_mode & 0o777))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == mode and path.read_text() == "{}"


def test_the_api_exports_its_configs_and_predict_takes_one_path(tiny_demo_run):
    from viper.jobs.demo import demo_clips

    assert viper.TrainConfig().epochs > 0 and viper.ExtractConfig().frames == 32
    clip = sorted(demo_clips().glob("*.mp4"))[0]
    results, failures = viper.predict(str(clip), tiny_demo_run / "run")  # a path, not its characters
    assert [result["video"] for result in results] == [str(clip)] and failures == []
