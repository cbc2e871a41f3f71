"""`FeatureStore.pack` streams each clip's values into values.npy: memory stays that of one clip, whatever the
store's size, and the pack still equals the per-clip arrays."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from viper.errors import ViperError
from viper.store import FeatureStore


def test_pack_equals_the_clips_and_refuses_a_misshapen_one(tmp_path):
    store = FeatureStore.create(tmp_path / "s", 4)
    rng = np.random.default_rng(0)
    clips = {f"v{i}": (rng.normal(size=(4, 3)).astype(np.float32), rng.random(4) > 0.5) for i in range(5)}
    for video_id, (values, mask) in clips.items():
        store.write("k", video_id, values, mask)
    values, mask = store.load("k", ["v3", "v0"])
    np.testing.assert_array_equal(values, [clips["v3"][0], clips["v0"][0]])
    np.testing.assert_array_equal(mask, [clips["v3"][1], clips["v0"][1]])
    folder = store.feature_dir("k") / "packed"
    packed = np.load(folder / "values.npy", mmap_mode="r")
    assert packed.dtype == np.float32 and packed.shape == (5, 4, 3)

    store.write("k", "v9", np.zeros((4, 2)), np.ones(4, bool))
    with pytest.raises(ViperError, match=r"v9\.npz holds \(4, 2\) values where the store's clips have \(4, 3\)"):
        store.pack("k")
    assert not list(folder.glob(".*.tmp"))  # the failed pack left no temp file


# VmHWM: this process's own peak (ru_maxrss would keep the pytest parent's peak across fork + exec)
PACK = textwrap.dedent("""
    import sys
    from viper.store import FeatureStore
    def peak_mb():
        return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024
    before = peak_mb()
    FeatureStore(sys.argv[1]).pack("k")
    print(peak_mb() - before)
""")


def test_packing_a_store_larger_than_the_bound_stays_in_bounded_memory(tmp_path):
    """200 clips of 32 x 4096 floats (105 MB of values) pack with memory growing by under 40 MB (2 MB measured);
    holding the whole array and a serialised copy of it, as packing did before, grew it by twice the store."""
    store = FeatureStore.create(tmp_path / "s", 32)
    for index in range(200):
        store.write("k", f"v{index:03d}", np.full((32, 4096), index, np.float32), np.arange(32) % 3 > 0)
    out = subprocess.run([sys.executable, "-c", PACK, str(store.root)], capture_output=True, text=True, check=True)
    assert float(out.stdout) < 40
    values, mask = store.load("k", ["v000", "v123", "v199"])
    assert values.shape == (3, 32, 4096) and (values[:, 0, 0] == [0, 123, 199]).all()
    assert (values == values[:, :1, :1]).all() and (mask == (np.arange(32) % 3 > 0)).all()
