"""NumPy inputs (.npy memory-mapped, .npz streamed) and their errors."""
import numpy as np
import pytest

from usfast import InputError
from usfast.io import open_input


def test_npy_batch_float_passthrough(tmp_path):
    a = np.random.default_rng(0).random((4, 6, 7), dtype=np.float32)
    np.save(tmp_path / "a.npy", a)
    s = open_input(tmp_path / "a.npy", spacing_mm=(0.1, 0.2), fps=20)
    assert s.kind == "npy" and s.n_frames == 4 and s.geometry.shape == (6, 7)
    assert isinstance(s._mmap, np.memmap)            # frames come from a memory map
    got = list(s.frames())
    np.testing.assert_array_equal(np.stack([f for _, _, f in got]), a)
    assert [t for _, t, _ in got] == pytest.approx([0, 0.05, 0.1, 0.15])


def test_npy_single_frame_and_integer_scaling(tmp_path):
    u8 = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    np.save(tmp_path / "u8.npy", u8)
    s = open_input(tmp_path / "u8.npy", spacing_mm=0.1)
    assert s.n_frames == 1 and s.timestamps is None
    np.testing.assert_array_equal(s.read_all()[0], u8 / np.float32(255))
    u16 = np.array([[0, 65535]], np.uint16)
    np.save(tmp_path / "u16.npy", u16)
    np.testing.assert_array_equal(open_input(tmp_path / "u16.npy", spacing_mm=0.1).read_all()[0], [[0, 1]])
    np.save(tmp_path / "f.npy", np.array([[-0.5, 0.5, 2.0]], np.float64))
    np.testing.assert_array_equal(open_input(tmp_path / "f.npy", spacing_mm=0.1).read_all()[0],
                                  [[0, 0.5, 1]])


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_with_metadata(tmp_path, compressed):
    frames = np.random.default_rng(1).integers(0, 256, (5, 8, 9), dtype=np.uint8)
    save = np.savez_compressed if compressed else np.savez
    save(tmp_path / "b.npz", other=np.zeros(3), frames=frames, spacing_mm=[0.1, 0.3],
         origin_mm=[2.0, -1.0], timestamps=np.arange(5) * 0.04 + 7)
    s = open_input(tmp_path / "b.npz")
    assert s.kind == "npz" and s.metadata["array"] == "frames"
    assert s.geometry.spacing_mm == (0.1, 0.3) and s.geometry.origin_mm == (2.0, -1.0)
    np.testing.assert_allclose(s.timestamps, np.arange(5) * 0.04 + 7)
    np.testing.assert_array_equal(s.read_all(), frames / np.float32(255))
    s2 = open_input(tmp_path / "b.npz", spacing_mm=0.5, fps=10)
    assert s2.geometry.spacing_mm == (0.5, 0.5) and s2.metadata["file_spacing_mm"] == [0.1, 0.3]
    np.testing.assert_allclose(s2.timestamps, np.arange(5) * 0.1)


def test_npz_first_array_and_fortran_order(tmp_path):
    a = np.asfortranarray(np.random.default_rng(2).random((3, 4, 5)))
    np.savez(tmp_path / "c.npz", stack=a, fps=np.array(12.5))
    s = open_input(tmp_path / "c.npz", spacing_mm=0.2)
    assert s.metadata["array"] == "stack" and s.fps == 12.5
    np.testing.assert_allclose(s.read_all(), a, rtol=1e-6)


def test_numpy_errors(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((2, 3, 4)))
    with pytest.raises(InputError) as e:
        open_input(tmp_path / "a.npy")
    assert "spacing_mm" in str(e.value) and "--spacing-mm" in str(e.value)
    np.save(tmp_path / "4d.npy", np.zeros((2, 3, 4, 3)))
    with pytest.raises(InputError, match="3-D batch"):
        open_input(tmp_path / "4d.npy", spacing_mm=0.1)
    np.save(tmp_path / "c.npy", np.zeros((2, 2), np.complex64))
    with pytest.raises(InputError, match="dtype complex64"):
        open_input(tmp_path / "c.npy", spacing_mm=0.1)
    np.save(tmp_path / "nan.npy", np.array([[0.0, np.nan]]))
    with pytest.raises(InputError, match="finite"):
        open_input(tmp_path / "nan.npy", spacing_mm=0.1).read_all()
    np.savez(tmp_path / "t.npz", frames=np.zeros((3, 2, 2)), spacing_mm=[0.1, 0.1],
             timestamps=[0.0, 1.0])
    with pytest.raises(InputError, match="timestamps"):
        open_input(tmp_path / "t.npz")
    np.savez(tmp_path / "s.npz", frames=np.zeros((3, 2, 2)), spacing_mm=[0.1, -1])
    with pytest.raises(InputError, match="spacing_mm"):
        open_input(tmp_path / "s.npz")
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(InputError, match="bad.npy"):
        open_input(tmp_path / "bad.npy", spacing_mm=0.1)
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(InputError, match="bad.npz"):
        open_input(tmp_path / "bad.npz", spacing_mm=0.1)
