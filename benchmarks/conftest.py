"""Benchmarks: pytest-benchmark suites (``pytest benchmarks/ --benchmark-only``). Sizes
256..2048; set USFAST_BENCH_FULL=1 for the largest ones."""
import os

import pytest

FULL = bool(os.environ.get("USFAST_BENCH_FULL"))
SIZES = [256, 512, 1024, 2048] if FULL else [256, 512, 1024]


def pytest_collection_modifyitems(config, items):
    if not config.pluginmanager.hasplugin("benchmark"):
        skip = pytest.mark.skip(reason="pytest-benchmark not installed (pip install 'usfast[bench]')")
        for it in items:
            it.add_marker(skip)
