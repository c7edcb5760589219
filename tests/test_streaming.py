"""``usfast process`` streams: a 10,000-frame input goes through reader, pipeline and writers
one frame at a time, and Python memory stays flat (no per-frame results kept): the peak for
10,000 frames is within 1 MiB of the peak for 1,000."""
import json
import tracemalloc

import numpy as np

from usfast.cli import main


def _peak(src, out, cfg, n):
    tracemalloc.start()
    try:
        assert main(["process", str(src), "-o", str(out), "--spacing-mm", "0.2", "--config",
                     str(cfg), "--no-video", "--quiet", "--max-frames", str(n)]) == 0
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_ten_thousand_frames_keep_memory_flat(tmp_path, capsys):
    n = 10_000
    rng = np.random.default_rng(0)
    frames = np.lib.format.open_memmap(tmp_path / "long.npy", mode="w+", dtype=np.uint8,
                                       shape=(n, 24, 32))
    frames[:] = rng.integers(0, 255, size=(n, 24, 32), dtype=np.uint8)
    frames.flush()
    del frames
    cfg = tmp_path / "c.toml"
    # the cheap stages only: this measures the streaming, not the detector
    cfg.write_text("[speckle]\nmethod = \"median\"\n[needle]\nenabled = false\n"
                   "[tracking]\nenabled = false\n[overlay]\nenabled = false\n")
    src = tmp_path / "long.npy"
    _peak(src, tmp_path / "warm", cfg, 50)  # imports and first-use caches
    small = _peak(src, tmp_path / "small", cfg, 1_000)
    large = _peak(src, tmp_path / "large", cfg, n)
    capsys.readouterr()
    # one frame is 768 B: keeping each frame's result would add well over 10 MiB
    assert large - small < 2**20, f"peak grew by {(large - small) / 2**20:.2f} MiB"
    res = json.loads((tmp_path / "large" / "results.json").read_text())
    assert len(res["frames"]) == n
    assert res["timings"]["total"]["frames"] == 4096  # the pipeline's timing window
