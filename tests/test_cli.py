"""The command line: info, doctor, --version, --help with examples, and clean errors."""
import json
import subprocess
import sys

import pytest

import usfast as us
from usfast.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert us.__version__ in capsys.readouterr().out


@pytest.mark.parametrize("cmd", ["info", "doctor", "bench", "demo", "process"])
def test_help_has_examples(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "Examples:" in out and f"usfast {cmd}" in out


def test_info_json_reports_every_backend(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["version"] == us.__version__
    assert set(info["backends"]) == {"cpu", "cuda", "cupy", "reference"}
    for name, st in info["backends"].items():
        assert isinstance(st["available"], bool)
        if not st["available"]:
            assert st["reason"], f"{name} unavailable without a reason"
    assert info["backends"]["cpu"]["available"]
    assert info["omp_threads"] >= 1


def test_info_text(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "backends:" in out and "cpu" in out


def test_doctor_passes_on_present_backends(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "ok    cpu   bmode" in out and "all checks passed" in out


def test_doctor_reports_a_failure(monkeypatch, capsys):
    """A backend that disagrees with the reference makes doctor exit non-zero."""
    real = us.envelope

    def broken(x, **kw):
        y = real(x, **kw)
        return y * 1.01 if kw.get("backend") == "cpu" else y
    monkeypatch.setattr(us, "envelope", broken)
    assert main(["doctor", "--backend", "cpu"]) == 1
    assert "FAIL  cpu   envelope" in capsys.readouterr().out


def test_console_script_runs():
    r = subprocess.run([sys.executable, "-m", "usfast", "info", "--json"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["version"] == us.__version__


@pytest.mark.skipif(not hasattr(us, "locate_needle"), reason="usfast.locate_needle is not in this tree")
def test_bench_reports_every_stage(capsys):
    assert main(["bench", "--size", "128", "--frames", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    for stage in ("bmode", "scan", "speckle", "needle", "tracking", "overlay", "total"):
        assert rows[stage]["frames"] == 3 and rows[stage]["median_ms"] > 0
