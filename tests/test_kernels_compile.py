"""Every .cuh kernel file compiles under NVRTC (the cupy backend's compiler) without a GPU,
so the cupy path cannot rot unseen; the same files compile under g++ and nvcc in the build."""
import re

import pytest

from usfast import _cupy


def _nvrtc_or_skip():
    try:
        from cupy.cuda import nvrtc
        nvrtc.getVersion()
    except Exception as e:  # pragma: no cover - only where the extras are missing
        pytest.skip(f"NVRTC not installed (pip install 'usfast[test]'): {e}")


@pytest.mark.parametrize("area", _cupy.areas())
def test_kernel_file_compiles_under_nvrtc(area):
    _nvrtc_or_skip()
    ptx = _cupy.compile_to_ptx(area)
    entries = re.findall(r"\.entry\s+(\w+)\(", ptx)
    assert entries, f"{area}.cuh defines no extern \"C\" kernels"
    assert all(e.startswith("usfast_") for e in entries)


def test_every_kernel_the_python_layer_launches_exists():
    """Names passed to _cupy.launch in the Python sources are defined in the kernel files."""
    _nvrtc_or_skip()
    from pathlib import Path
    defined = set()
    for area in _cupy.areas():
        defined |= set(re.findall(r"\.entry\s+(\w+)\(", _cupy.compile_to_ptx(area)))
    pkg = Path(_cupy.__file__).parent
    launched, prefixes = set(), set()
    pat = re.compile(r'launch\(\s*"[a-z_]+",\s*(f?)"(usfast_[a-z0-9_]+)(\{?)')
    for py in pkg.rglob("*.py"):
        for m in pat.finditer(py.read_text()):
            (prefixes if m.group(1) and m.group(3) else launched).add(m.group(2))
    assert launched or prefixes
    for prefix in prefixes:
        assert any(d.startswith(prefix) for d in defined), prefix
    missing = {n for n in launched if n not in defined}
    assert not missing, missing


def test_composed_bmode_kernel_names_exist():
    """The B-mode layer builds some names from the dtypes ("usfast_" + f"{op}_{in}_{out}"),
    which the pattern above cannot read: every combination it can build is defined."""
    _nvrtc_or_skip()
    defined = set(re.findall(r"\.entry\s+(\w+)\(", _cupy.compile_to_ptx("bmode")))
    want = {f"usfast_{op}_{i}_{o}" for op, ins in (("bmode", ("f32", "i16")),
                                                   ("envelope_log", ("f32", "i16")),
                                                   ("log_compress", ("f32", "c64")))
            for i in ins for o in ("f32", "u8")}
    assert not want - defined, want - defined
