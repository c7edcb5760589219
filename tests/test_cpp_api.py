"""The C++ core as a vendor uses it: built without Python, its ctest suite, then installed and
found by a separate CMake project through find_package(usfast)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.mark.skipif(shutil.which("cmake") is None or not (ROOT / "CMakeLists.txt").exists(),
                    reason="needs cmake and the source tree")
def test_cpp_library_ctest_and_find_package(tmp_path):
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    build, prefix = tmp_path / "build", tmp_path / "prefix"
    env = dict(os.environ, USFAST_CUDA="OFF")
    _run(["cmake", "-S", ROOT, "-B", build, *gen, "-DUSFAST_PYTHON=OFF", "-DUSFAST_TESTS=ON",
          f"-DCMAKE_INSTALL_PREFIX={prefix}"], env=env)
    _run(["cmake", "--build", build, "-j", "2"], env=env)
    r = _run(["ctest", "--test-dir", build, "--output-on-failure"], env=env)
    assert "100% tests passed" in r.stdout
    _run(["cmake", "--install", build], env=env)
    assert (prefix / "include" / "usfast" / "usfast.hpp").exists()
    assert (prefix / "include" / "usfast" / "kernels" / "bmode.cuh").exists()
    cbuild = tmp_path / "consumer"
    _run(["cmake", "-S", ROOT / "cpp" / "tests" / "consumer", "-B", cbuild, *gen,
          f"-DCMAKE_PREFIX_PATH={prefix}"], env=env)
    _run(["cmake", "--build", cbuild], env=env)
    r = _run([cbuild / "consumer"])
    assert r.stdout.split() == ["1", "0"]
