"""The ``cupy`` backend: the very ``.cuh`` kernel sources of the C++ core, compiled at run time
with NVRTC through ``cupy.RawModule`` (memoised per area and device) and launched on the
caller's stream. There is no second copy of any kernel here, only launch configuration.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

from . import _backend


@functools.lru_cache(maxsize=None)
def kernel_dir() -> Path:
    """Where the .cuh sources are: inside the installed package, or the source tree."""
    here = Path(__file__).resolve().parent
    for cand in (here / "kernels", here.parent.parent / "cpp" / "kernels"):
        if (cand / "common.cuh").is_file():
            return cand
    raise _backend.BackendUnavailable("the usfast kernel sources (*.cuh) are not installed")


def source(area: str) -> str:
    return (kernel_dir() / f"{area}.cuh").read_text()


NVRTC_OPTIONS = ("-std=c++17",)


@functools.lru_cache(maxsize=None)
def _module(area: str, device_id: int):
    cp = _backend.cupy_module()
    src = f'#include "{area}.cuh"\n'
    return cp.RawModule(code=src, options=NVRTC_OPTIONS + (f"-I{kernel_dir()}",))


def kernel(area: str, name: str):
    cp = _backend.cupy_module()
    return _module(area, cp.cuda.Device().id).get_function(name)


def launch(area: str, name: str, rows: int, cols: int, frames: int, args, stream: int):
    """Launch ``name`` over (cols, rows, frames) with the 32x8 blocks of the CUDA launchers."""
    cp = _backend.cupy_module()
    grid = ((cols + 31) // 32, (rows + 7) // 8, frames)
    with cp.cuda.ExternalStream(stream):
        kernel(area, name)(grid, (32, 8, 1), args)


def compile_to_ptx(area: str, arch: str = "compute_90") -> str:
    """Compile one kernel file with NVRTC alone (no GPU needed) and return its PTX. Raises
    RuntimeError with NVRTC's log on failure. Used by tests to keep the cupy path honest."""
    from cupy.cuda import nvrtc

    kd = kernel_dir()
    headers = []
    names = []
    for p in sorted(kd.glob("*.cuh")):
        headers.append(p.read_bytes())
        names.append(p.name.encode())
    prog = nvrtc.createProgram(f'#include "{area}.cuh"\n', f"{area}_check.cu", headers, names)
    try:
        nvrtc.compileProgram(prog, [f"-arch={arch}", *NVRTC_OPTIONS])
    except Exception as e:
        log = nvrtc.getProgramLog(prog)
        raise RuntimeError(f"NVRTC failed on {area}.cuh: {e}\n{log}") from None
    finally:
        pass
    ptx = nvrtc.getPTX(prog)
    nvrtc.destroyProgram(prog)
    return ptx.decode() if isinstance(ptx, bytes) else ptx


def areas():
    return sorted(p.stem for p in kernel_dir().glob("*.cuh") if p.stem != "common")


os.environ.setdefault("CUPY_CACHE_IN_MEMORY", "0")
