#!/usr/bin/env bash
# Developer build: compile the core into build/dev and drop _core next to the Python sources,
# so `PYTHONPATH=python` runs the tree as it is. Serialised by a lock (several builds may race).
# USFAST_CUDA=ON|OFF|AUTO as for pip (default OFF here: fast; CI compiles CUDA through pip).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
mkdir -p build
exec 9>build/.dev.lock
flock 9
cmake -S . -B build/dev -G Ninja -DUSFAST_CUDA="${USFAST_CUDA:-OFF}" \
  -DPython_EXECUTABLE="$(readlink -f "$py")" \
  -Dpybind11_DIR="$("$py" -c 'import pybind11; print(pybind11.get_cmake_dir())')" >/dev/null
cmake --build build/dev
# copy then rename: overwriting in place would corrupt the module in running processes (SIGBUS)
for so in build/dev/_core*.so; do
  cp -f "$so" "python/usfast/.$(basename "$so").tmp"
  mv -f "python/usfast/.$(basename "$so").tmp" "python/usfast/$(basename "$so")"
done
