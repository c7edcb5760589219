"""usfast.Pipeline: stages by name and parameters, buffers reused, timings, config checks."""
import numpy as np
import pytest

import usfast as us
from usfast import sim
from usfast.pipeline import Pipeline

needle_present = pytest.mark.skipif(not hasattr(us, "locate_needle"),
                                    reason="usfast.locate_needle is not in this tree")


def _rf_seq(frames=6, seed=11):
    seq = sim.insertion(duration_s=frames / 20, fps=20, seed=seed)
    x0, x1, z0, z1 = seq.geometry.extent_mm()
    probe = us.ProbeGeometry.linear(n_lines=128, width_mm=x1 - x0, end_depth_mm=z1)
    return seq, probe


def test_rf_pipeline_stages_buffers_and_timings():
    seq, probe = _rf_seq(frames=4)
    fr = sim.render_rf(seq.phantom, probe, seed=1, look=seq.look, needle=seq.needles[2])
    pipe = Pipeline(input="rf", probe=probe,
                    bmode=dict(fs_hz=fr.fs_hz, f0_hz=fr.f0_hz, decimation=2,
                               bandwidth_hz=0.8 * fr.f0_hz, reference="max"),
                    scan=dict(pixel_mm=0.1), speckle=False, needle=False, tracking=False,
                    overlay=False)
    r1 = pipe(fr.rf)
    buf = r1.image
    r2 = pipe(fr.rf)
    assert r2.image is buf  # buffers are allocated once per frame shape and reused
    assert r1.geometry.shape == buf.shape and r1.geometry.spacing_mm == (0.1, 0.1)
    # the pipeline's image equals the functions called one by one
    step = us.bmode(fr.rf, fr.fs_hz, fr.f0_hz, decimation=2, bandwidth_hz=0.8 * fr.f0_hz,
                    reference="max")
    sc = us.ScanConverter(probe, step.shape, pixel_mm=0.1)
    np.testing.assert_allclose(buf, sc(step), atol=1e-6)
    t = pipe.timings()
    assert set(t) == {"bmode", "scan", "total"}
    assert t["total"]["frames"] == 2 and t["total"]["p95_ms"] >= t["total"]["median_ms"] > 0


@needle_present
def test_image_pipeline_tracks_and_draws():
    seq = sim.insertion(duration_s=0.5, fps=20, seed=5)
    pipe = Pipeline(input="image", geometry=seq.geometry, speckle={"method": "guided"}
                    if hasattr(us, "guided") else False)
    states = []
    for fr in seq:
        res = pipe(fr.bmode, t=fr.t_s)
        states.append(res.state)
        assert res.primitives is not None
    assert all(np.isfinite(s.tip_mm).all() for s in states)
    rgb = pipe.render(res)
    assert rgb.shape == seq.geometry.shape + (3,) and rgb.dtype == np.uint8
    assert {"needle", "tracking", "overlay", "total"} <= set(pipe.timings())


def test_from_config_toml_and_effective_config(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text('input = "image"\n[geometry]\nspacing_mm = [0.1, 0.1]\n'
                 '[speckle]\nmethod = "none"\n[needle]\nenabled = false\n'
                 '[tracking]\nenabled = false\n[overlay]\nenabled = false\n')
    pipe = Pipeline.from_config(str(p))
    cfg = pipe.config()
    assert cfg["speckle"] is False and cfg["needle"] is False
    img = np.random.default_rng(0).random((40, 30)).astype(np.float32)
    res = pipe(img)
    np.testing.assert_array_equal(res.image, img)


@pytest.mark.parametrize("kw,arg", [
    (dict(input="bogus"), "input"),
    (dict(input="image"), "geometry"),
    (dict(input="rf", probe=us.ProbeGeometry.linear(n_elements=8), bmode={"fs_hz": 4e7}),
     "f0_hz"),
    (dict(input="rf", probe=us.ProbeGeometry.linear(n_elements=8),
          bmode={"fs_hz": 4e7, "f0_hz": 5e6, "not_a_param": 1}), "not_a_param"),
    (dict(input="image", geometry=us.ImageGeometry(), speckle={"method": "wavelet"}),
     "speckle.method"),
    (dict(input="image", geometry=us.ImageGeometry(), speckle=False, tracking={"bogus": 1}),
     "tracking.bogus"),
])
def test_bad_configuration(kw, arg):
    with pytest.raises(us.InputError, match=arg.replace(".", r"\.")):
        Pipeline(**kw)


def test_unknown_top_level_key():
    with pytest.raises(us.InputError, match="colour"):
        Pipeline.from_config({"input": "image", "colour": 1})
