"""Atomic output helpers, sha256_file and open_input's dispatch and argument errors."""
import hashlib
import os

import numpy as np
import pytest

from usfast import InputError
from usfast.io import AtomicDirectory, atomic_path, atomic_write, open_input, sha256_file


def test_atomic_write_success_and_failure(tmp_path):
    target = tmp_path / "results.json"
    with atomic_write(target, "w") as f:
        f.write('{"ok": true}')
        assert not target.exists()                 # nothing at the target until the end
    assert target.read_text() == '{"ok": true}'
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as f:
            f.write("half")
            raise RuntimeError("midway")
    assert target.read_text() == '{"ok": true}'    # old content kept
    assert os.listdir(tmp_path) == ["results.json"]
    with pytest.raises(InputError, match="mode"):
        with atomic_write(target, "a"):
            pass
    with pytest.raises(InputError, match="existing folder"):
        with atomic_write(tmp_path / "nope" / "x.json"):
            pass


def test_atomic_path_keeps_extension(tmp_path):
    target = tmp_path / "frames.npy"
    with atomic_path(target) as tmp:
        assert tmp.endswith("frames.npy") and os.path.dirname(tmp) == str(tmp_path)
        assert os.path.basename(tmp).startswith(".")
        np.save(tmp, np.arange(3))                 # np.save keeps a name ending in .npy
    np.testing.assert_array_equal(np.load(target), np.arange(3))
    with pytest.raises(ValueError):
        with atomic_path(tmp_path / "b.npy") as tmp:
            np.save(tmp, np.arange(3))
            raise ValueError("x")
    assert sorted(os.listdir(tmp_path)) == ["frames.npy"]


def test_atomic_directory(tmp_path):
    out = tmp_path / "run"
    with AtomicDirectory(out) as d:
        (d / "a.txt").write_text("1")
        assert not out.exists()
    assert (out / "a.txt").read_text() == "1"
    with pytest.raises(InputError, match="already holds files"):
        with AtomicDirectory(out):
            pass
    with pytest.raises(RuntimeError):
        with AtomicDirectory(out, overwrite=True) as d:
            (d / "b.txt").write_text("2")
            raise RuntimeError("fail")
    assert sorted(os.listdir(out)) == ["a.txt"]     # old folder intact
    with AtomicDirectory(out, overwrite=True) as d:
        (d / "b.txt").write_text("2")
    assert sorted(os.listdir(out)) == ["b.txt"]
    assert sorted(os.listdir(tmp_path)) == ["run"]  # no temporary or old folders left


def test_sha256_file(tmp_path):
    p = tmp_path / "x.bin"
    data = os.urandom(3 * 1024 * 1024 + 5)
    p.write_bytes(data)
    assert sha256_file(p) == hashlib.sha256(data).hexdigest()
    with pytest.raises(InputError, match="readable"):
        sha256_file(tmp_path / "missing")


def test_open_input_argument_errors(tmp_path):
    with pytest.raises(InputError, match=r"open_input\(path\).*no such file"):
        open_input(tmp_path / "missing.dcm")
    with pytest.raises(InputError, match=r"open_input\(path\)"):
        open_input(12)
    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        open_input(tmp_path / "empty.npy", spacing_mm=0.1)
    (tmp_path / "x.xyz").write_bytes(b"hello world")
    with pytest.raises(InputError, match="supported input"):
        open_input(tmp_path / "x.xyz")
    np.save(tmp_path / "a.npy", np.zeros((2, 2)))
    for bad in (0, -1, (0.1, 0.2, 0.3), "abc", float("nan")):
        with pytest.raises(InputError, match=r"open_input\(spacing_mm\)"):
            open_input(tmp_path / "a.npy", spacing_mm=bad)
    for bad in (0, -5, "x", float("inf")):
        with pytest.raises(InputError, match=r"open_input\(fps\)"):
            open_input(tmp_path / "a.npy", spacing_mm=0.1, fps=bad)


def test_open_input_sniffs_content(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((2, 2)))
    os.rename(tmp_path / "a.npy", tmp_path / "noext")
    s = open_input(tmp_path / "noext", spacing_mm=0.1)
    assert s.kind == "npy"
    with s:
        assert s.read_all().shape == (1, 2, 2)
    assert s.metadata["path"] == str(tmp_path / "noext")
    import json
    json.dumps(s.metadata)                          # metadata is JSON-serialisable
