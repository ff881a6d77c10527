"""Read a PyTorch state dict with the standard library and NumPy, safely.

We write our own reader because the suite must not depend on PyTorch (a multi-GB install) just to read one file
of pretrained weights, and because `pickle.load` on a downloaded file can run arbitrary code. The unpickler here
resolves only the handful of globals a state dict needs and refuses every other name.

Both of PyTorch's file layouts are read: the legacy one (a sequence of pickles followed by raw storages, which is
what the EfficientNet-Lite0 package ships) and the newer zip archive (`archive/data.pkl` plus `archive/data/<key>`).
"""

import collections
import hashlib
import io
import pickle
import struct
import zipfile

import numpy as np

_LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL_VERSION = 1001

# The storage classes a state dict of plain tensors can name, and the NumPy dtype of each.
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafeCheckpointError(ValueError):
    """Raised when a checkpoint's pickle names a global that a plain state dict never needs."""


class _StorageType:
    """Stands in for `torch.FloatStorage` and friends: only its dtype matters here."""

    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _TensorRef:
    """A tensor before its storage bytes are read: storage key, offset, shape and strides."""

    def __init__(self, storage, storage_offset, shape, strides):
        self.storage = storage
        self.storage_offset = storage_offset
        self.shape = tuple(shape)
        self.strides = tuple(strides)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *args):
    return _TensorRef(storage, storage_offset, size, stride)


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that knows four kinds of names and refuses every other global."""

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeCheckpointError(
            f"Refusing to load a checkpoint that names the global '{module}.{name}'; a plain state dict only "
            "names collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch.*Storage."
        )

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise UnsafeCheckpointError(f"Unexpected persistent id in checkpoint. Received: {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError(f"Unexpected storage type in checkpoint. Received: {storage_type!r}")
        return (key, storage_type.dtype)


def _materialize(ref, storages):
    key, dtype = ref.storage
    flat = storages[key]
    if flat.dtype != dtype:
        flat = flat.view(dtype)
    if not ref.shape:
        return flat[ref.storage_offset].copy()
    itemsize = flat.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        flat[ref.storage_offset :],
        shape=ref.shape,
        strides=tuple(s * itemsize for s in ref.strides),
        writeable=False,
    )
    return np.array(view)


def _load_legacy(data):
    stream = io.BytesIO(data)
    # The first three pickles hold only ints and a dict of ints, so they go through the same restricted unpickler.
    magic = _RestrictedUnpickler(stream).load()
    if magic != _LEGACY_MAGIC_NUMBER:
        raise ValueError("Not a PyTorch checkpoint: wrong magic number.")
    protocol = _RestrictedUnpickler(stream).load()
    if protocol != _LEGACY_PROTOCOL_VERSION:
        raise ValueError(f"Unsupported PyTorch legacy protocol version. Received: {protocol}")
    sys_info = _RestrictedUnpickler(stream).load()
    if not sys_info.get("little_endian", True):
        raise ValueError("Big-endian PyTorch checkpoints are not supported.")
    state = _RestrictedUnpickler(stream).load()
    keys = _RestrictedUnpickler(stream).load()
    dtypes = _collect_storage_dtypes(state)
    storages = {}
    for key in keys:
        (numel,) = struct.unpack("<q", stream.read(8))
        dtype = np.dtype(dtypes.get(str(key), np.uint8))
        buffer = stream.read(numel * dtype.itemsize)
        if len(buffer) != numel * dtype.itemsize:
            raise ValueError("The checkpoint is truncated: a tensor storage ends early.")
        storages[str(key)] = np.frombuffer(buffer, dtype=dtype)
    return state, storages


def _load_zip(data):
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = archive.namelist()
    pickle_name = next((n for n in names if n.endswith("/data.pkl")), None)
    if pickle_name is None:
        raise ValueError("Not a PyTorch checkpoint: the zip has no data.pkl.")
    prefix = pickle_name[: -len("data.pkl")]
    state = _RestrictedUnpickler(io.BytesIO(archive.read(pickle_name))).load()
    dtypes = _collect_storage_dtypes(state)
    storages = {
        key: np.frombuffer(archive.read(f"{prefix}data/{key}"), dtype=np.dtype(dtype)) for key, dtype in dtypes.items()
    }
    return state, storages


def _collect_storage_dtypes(state):
    if not isinstance(state, collections.OrderedDict | dict):
        raise ValueError(f"Expected the checkpoint to hold a state dict. Received: {type(state).__name__}")
    return {ref.storage[0]: ref.storage[1] for ref in state.values() if isinstance(ref, _TensorRef)}


def file_sha256(path):
    """Return the hex SHA-256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_torch_state_dict(path, expected_sha256=None):
    """Load a PyTorch state dict of tensors as an ordered dict of NumPy arrays, without PyTorch.

    Args:
        path: a `.pth`/`.pt` file written by `torch.save(model.state_dict(), path)`.
        expected_sha256: if given, the file's SHA-256 must equal it, or a `ValueError` is raised.

    Returns:
        An `OrderedDict` mapping parameter names to NumPy arrays in PyTorch's layout.
    """
    with open(path, "rb") as file:
        data = file.read()
    if expected_sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256:
            raise ValueError(
                f"Checksum mismatch for {path}: expected sha256 {expected_sha256}. Received: {actual}. "
                "The file is damaged or is not the expected checkpoint."
            )
    state, storages = _load_zip(data) if data[:2] == b"PK" else _load_legacy(data)
    return collections.OrderedDict(
        (name, _materialize(ref, storages)) for name, ref in state.items() if isinstance(ref, _TensorRef)
    )
