import collections
import io
import os
import pickle
import struct
import sys
import types

import numpy as np
import pytest

from dlapps.backbones.torch_checkpoint import UnsafeCheckpointError, load_torch_state_dict


def _fake_torch_modules():
    """Modules named like PyTorch's, so that pickle writes the same globals a real checkpoint holds."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    storage = type("FloatStorage", (), {"__module__": "torch"})
    torch.FloatStorage = storage
    torch._utils = utils
    return torch, utils, storage


class _Tensor:
    def __init__(self, rebuild, key, shape):
        self.rebuild, self.key, self.shape = rebuild, key, shape

    def __reduce__(self):
        strides = tuple(int(np.prod(self.shape[i + 1 :])) for i in range(len(self.shape)))
        return (self.rebuild, (("storage", self.key), 0, self.shape, strides, False, collections.OrderedDict()))


def write_legacy_checkpoint(path, tensors):
    """Write {name: float32 array} in PyTorch's legacy (non-zip) format, without PyTorch."""
    torch, utils, storage = _fake_torch_modules()
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        state = collections.OrderedDict(
            (name, _Tensor(utils._rebuild_tensor_v2, str(i), array.shape))
            for i, (name, array) in enumerate(tensors.items())
        )

        class Writer(pickle.Pickler):
            def persistent_id(self, obj):
                if isinstance(obj, tuple) and len(obj) == 2 and obj[0] == "storage":
                    array = list(tensors.values())[int(obj[1])]
                    return ("storage", storage, obj[1], "cpu", array.size, None)
                return None

        buffer = io.BytesIO()
        for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(header, buffer, protocol=2)
        Writer(buffer, protocol=2).dump(state)
        pickle.dump([str(i) for i in range(len(tensors))], buffer, protocol=2)
        for array in tensors.values():
            buffer.write(struct.pack("<q", array.size))
            buffer.write(np.ascontiguousarray(array, np.float32).tobytes())
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    path.write_bytes(buffer.getvalue())
    return path


def test_reads_a_legacy_state_dict(tmp_path):
    tensors = {"conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2), "bn.bias": np.ones(3, np.float32)}
    state = load_torch_state_dict(write_legacy_checkpoint(tmp_path / "w.pth", tensors))
    assert list(state) == ["conv.weight", "bn.bias"]
    np.testing.assert_array_equal(state["conv.weight"], tensors["conv.weight"])


def test_refuses_any_other_global(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    buffer = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(header, buffer, protocol=2)
    pickle.dump(collections.OrderedDict(x=Evil()), buffer, protocol=2)
    (tmp_path / "evil.pth").write_bytes(buffer.getvalue())
    with pytest.raises(UnsafeCheckpointError, match="posix.system|os.system"):
        load_torch_state_dict(tmp_path / "evil.pth")


def test_checksum_is_checked(tmp_path):
    path = write_legacy_checkpoint(tmp_path / "w.pth", {"a": np.zeros(2, np.float32)})
    with pytest.raises(ValueError, match="Checksum mismatch"):
        load_torch_state_dict(path, expected_sha256="0" * 64)
