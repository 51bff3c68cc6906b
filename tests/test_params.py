"""theon.save_params / theon.load_params: weights keyed by name in an .npz file, never pickles;
unnamed, duplicate, missing and mismatched parameters are errors naming them (strict) or
reported (strict=False); a save is atomic; device values round-trip."""
from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest
import theon
from theon import config


def _params(seed: int = 0, dtype: str = "float64"):
    rng = np.random.default_rng(seed)
    return [theon.shared(rng.normal(size=(3, 2)).astype(dtype), name="W"),
            theon.shared(rng.normal(size=2).astype(dtype), name="b"),
            theon.shared(np.arange(4, dtype="int32"), name="file")]  # numpy savez's own keyword


def _values(params):
    return [p.get_value() for p in params]


def test_round_trip_by_name_in_any_order(tmp_path):
    path = tmp_path / "model.npz"
    saved = _params(0)
    theon.save_params(path, saved)
    with np.load(path, allow_pickle=False) as f:  # a plain npz, readable without theon
        assert sorted(f.files) == ["W", "b", "file"] and f["W"].dtype == np.float64
    fresh = _params(1)[::-1]
    report = theon.load_params(str(path), fresh)
    assert sorted(report.loaded) == ["W", "b", "file"] and not report.skipped
    for a, b in zip(_values(saved), _values(fresh[::-1])):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    assert [n for n in os.listdir(tmp_path)] == ["model.npz"]  # no temporary file left


def test_unnamed_and_duplicate_names(tmp_path):
    path = tmp_path / "m.npz"
    W, b, _ = _params()
    with pytest.raises(ValueError, match=r"params\[1\].*has no name"):
        theon.save_params(path, [W, theon.shared(np.zeros(2))])
    with pytest.raises(ValueError, match="two parameters are named 'W'"):
        theon.save_params(path, [W, b, theon.shared(np.zeros(2), name="W")])
    with pytest.raises(TypeError, match="not a shared variable"):
        theon.save_params(path, [W, theon.tensor.vector("v")])
    assert not path.exists()


def test_strict_load_names_the_parameter_and_loads_nothing(tmp_path):
    path = tmp_path / "m.npz"
    theon.save_params(path, _params(0)[:2])
    W, b, extra = _params(1)
    before = _values([W, b])
    with pytest.raises(ValueError, match="parameter 'file' is not in the file"):
        theon.load_params(path, [W, b, extra])
    assert all(np.array_equal(x, y) for x, y in zip(before, _values([W, b])))
    with pytest.raises(ValueError, match="the file's 'b' is not among the parameters"):
        theon.load_params(path, [W])
    wide = theon.shared(np.zeros((4, 2)), name="W")
    with pytest.raises(ValueError, match=r"parameter 'W': the file has shape \(3, 2\), the "
                                         r"parameter \(4, 2\)"):
        theon.load_params(path, [wide, b])
    narrow = theon.shared(np.zeros((3, 2), "float32"), name="W")
    with pytest.raises(ValueError, match="parameter 'W': the file has dtype float64, the "
                                         "parameter float32"):
        theon.load_params(path, [narrow, b])
    assert all(np.array_equal(x, y) for x, y in zip(before, _values([W, b])))


def test_non_strict_loads_what_matches_and_reports_the_rest(tmp_path):
    path = tmp_path / "m.npz"
    old = _params(0)
    theon.save_params(path, old)
    # fine-tuning: the same first layer, a new output layer of another size, a new variable
    W = theon.shared(np.zeros((3, 2)), name="W")
    b = theon.shared(np.zeros(5), name="b")
    head = theon.shared(np.ones(5), name="head")
    report = theon.load_params(path, [W, b, head], strict=False)
    assert report.loaded == ["W"] and report.missing == ["head"]
    assert report.unexpected == ["file"] and list(report.mismatched) == ["b"]
    assert report.skipped
    np.testing.assert_array_equal(W.get_value(), old[0].get_value())
    np.testing.assert_array_equal(b.get_value(), np.zeros(5))  # left as it was
    text = str(report)
    assert "loaded 1 parameter" in text and "head" in text and "skipped b: the file has " \
        "shape (2,), the parameter (5,)" in text


def test_an_interrupted_save_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    old = _params(0)
    theon.save_params(path, old)
    original = path.read_bytes()
    calls = []

    def fail_on_second(fh, array, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        return real(fh, array, **kwargs)
    real = np.lib.format.write_array
    monkeypatch.setattr(np.lib.format, "write_array", fail_on_second)
    with pytest.raises(OSError, match="disk full"):
        theon.save_params(path, _params(1))
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ["m.npz"]
    monkeypatch.undo()
    fresh = _params(2)
    theon.load_params(path, fresh)
    np.testing.assert_array_equal(fresh[0].get_value(), old[0].get_value())


def test_object_arrays_and_bad_files_are_refused(tmp_path):
    W = theon.shared(np.zeros(2), name="W")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, W=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(ValueError, match="'W' is an object array"):
        theon.load_params(pickled, [W])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not really a zip file")
    with pytest.raises(ValueError, match="garbage.npz is not an .npz file"):
        theon.load_params(garbage, [W])
    text = tmp_path / "weights.txt"
    text.write_text("1 2 3\n")
    with pytest.raises(ValueError, match="weights.txt is not an .npz file"):
        theon.load_params(text, [W])
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(2))
    with pytest.raises(ValueError, match="single.npy holds a single array"):
        theon.load_params(single, [W])
    truncated = tmp_path / "truncated.npz"
    theon.save_params(truncated, [W])
    truncated.write_bytes(truncated.read_bytes()[:-30])
    with pytest.raises(ValueError, match="truncated.npz"):
        theon.load_params(truncated, [W])
    with pytest.raises(FileNotFoundError, match="no such file"):
        theon.load_params(tmp_path / "absent.npz", [W])
    assert zipfile.is_zipfile(pickled)


def test_device_values_round_trip(tmp_path):
    """Weights in device memory (device=cuda on the CPU stand-in) are saved from there and
    loaded back there; a file saved on the CPU loads onto the device and back."""
    from theon.backends.cuda import simulator
    if simulator.cxx() is None:
        pytest.skip("no C++ compiler for the stand-in's kernels")
    from theon.backends.cuda.backend import runtime
    saved = config.device, config.cuda.simulator
    cpu = _params(0, "float32")
    theon.save_params(tmp_path / "cpu.npz", cpu)
    try:
        config.device, config.cuda.simulator = "cuda", True
        runtime()
        dev = _params(1, "float32")
        assert type(dev[0].get_value(borrow=True, return_internal_type=True)) is \
            simulator.DeviceArray
        theon.load_params(tmp_path / "cpu.npz", dev)
        assert type(dev[0].get_value(borrow=True, return_internal_type=True)) is \
            simulator.DeviceArray
        for a, b in zip(_values(cpu), _values(dev)):
            np.testing.assert_array_equal(a, b)
        dev[0].set_value(dev[0].get_value() * 2)
        theon.save_params(tmp_path / "dev.npz", dev)
    finally:
        config.device, config.cuda.simulator = saved
    back = _params(2, "float32")
    theon.load_params(tmp_path / "dev.npz", back)
    np.testing.assert_array_equal(back[0].get_value(), 2 * cpu[0].get_value())
    assert type(back[0].get_value(borrow=True)) is np.ndarray
