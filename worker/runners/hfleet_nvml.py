"""NVML, read through ctypes: the GPU driver's version and the total-energy
counter of the one GPU a task runs on (stdlib only; no pynvml).

This is the runner's only door to NVML.  Everything here falls back to
"not measurable" with a reason, never to an exception: no libnvidia-ml.so.1
(a CPU machine, an AMD GPU, a container without the driver's libraries), a
driver too old to export a call, a device NVML does not know, a MIG
instance (NVML's counter belongs to the whole GPU, shared by every
instance), or a counter the device does not keep (before Volta).

The device is found by its UUID, the one the worker gave the task
(HFLEET_DEVICE_UUID) and torch reports for cuda:0; the caller decides which
(hfleet_bench.task_device_uuid), and a UUID NVML does not know is an answer
("not measurable"), never a reason to read another GPU.  NVML enumerates
every GPU of the machine whatever CUDA_VISIBLE_DEVICES says, which is why
the UUID, not an index, names the device.

NVML is initialised once per process (a warm runner keeps it for its life;
nvmlInit is reference-counted in the driver and cheap to keep).
"""

from __future__ import annotations

import ctypes
import threading

LIBRARY = "libnvidia-ml.so.1"
NVML_SUCCESS = 0
NVML_DEVICE_MIG_ENABLE = 1
DRIVER_BUFFER = 80     # NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE
UUID_MAX = 96          # NVML_DEVICE_UUID_V2_BUFFER_SIZE


class NvmlError(Exception):
    """An NVML call failed; the message names the call and NVML's words."""


class Nvml:
    """The few NVML calls the runner makes, over a loaded and initialised
    libnvidia-ml.  Build it with open_nvml()."""

    def __init__(self, cdll):
        self._lib = cdll
        self._lib.nvmlErrorString.restype = ctypes.c_char_p
        self._lib.nvmlErrorString.argtypes = [ctypes.c_int]

    def _check(self, call: str, rc: int) -> None:
        if rc != NVML_SUCCESS:
            try:
                words = self._lib.nvmlErrorString(rc)
                words = words.decode("utf-8", "replace") if words else f"error {rc}"
            except Exception:  # noqa: BLE001 - the code is enough then
                words = f"error {rc}"
            raise NvmlError(f"{call} failed: {words}")

    def _fn(self, name: str):
        fn = getattr(self._lib, name, None)
        if fn is None:
            raise NvmlError(f"this driver's NVML does not export {name}")
        return fn

    def driver_version(self) -> str:
        buf = ctypes.create_string_buffer(DRIVER_BUFFER)
        self._check("nvmlSystemGetDriverVersion",
                    self._fn("nvmlSystemGetDriverVersion")(buf, ctypes.c_uint(DRIVER_BUFFER)))
        return buf.value.decode("ascii", "replace")

    def device_by_uuid(self, uuid: str):
        handle = ctypes.c_void_p()
        raw = uuid.encode("ascii", "replace")
        if len(raw) >= UUID_MAX:
            raise NvmlError(f"device UUID {uuid[:UUID_MAX]!r}... is longer than NVML's {UUID_MAX - 1} bytes")
        self._check("nvmlDeviceGetHandleByUUID",
                    self._fn("nvmlDeviceGetHandleByUUID")(ctypes.c_char_p(raw), ctypes.byref(handle)))
        return handle

    def mig_enabled(self, handle) -> bool:
        """True when MIG mode is on; False when off or when NVML cannot say
        (a GPU without MIG answers 'Not Supported')."""
        fn = getattr(self._lib, "nvmlDeviceGetMigMode", None)
        if fn is None:
            return False
        current, pending = ctypes.c_uint(), ctypes.c_uint()
        if fn(handle, ctypes.byref(current), ctypes.byref(pending)) != NVML_SUCCESS:
            return False
        return current.value == NVML_DEVICE_MIG_ENABLE

    def total_energy_mj(self, handle) -> int:
        """Millijoules the GPU used since the driver was last loaded (Volta and later)."""
        mj = ctypes.c_ulonglong()
        self._check("nvmlDeviceGetTotalEnergyConsumption",
                    self._fn("nvmlDeviceGetTotalEnergyConsumption")(handle, ctypes.byref(mj)))
        return int(mj.value)


_lock = threading.Lock()
_opened = None   # (Nvml or None, reason): the outcome of the first open, kept


def open_nvml(loader=ctypes.CDLL, path: str = LIBRARY):
    """(Nvml, "") once NVML is loaded and initialised, else (None, why).

    The first outcome is kept for the process's life when the default loader
    is used; a test passes its own loader and gets a fresh attempt."""
    global _opened
    if loader is ctypes.CDLL and path == LIBRARY:
        with _lock:
            if _opened is None:
                _opened = _open(loader, path)
            return _opened
    return _open(loader, path)


def _open(loader, path):
    try:
        cdll = loader(path)
    except OSError as exc:
        return None, f"NVML not available: cannot load {path} ({exc})"
    try:
        init = cdll.nvmlInit_v2
        nvml = Nvml(cdll)
    except AttributeError as exc:
        return None, f"NVML not available: {path} is not NVML or too old ({exc})"
    try:
        nvml._check("nvmlInit_v2", init())
    except NvmlError as exc:
        return None, f"NVML not available: {exc}"
    return nvml, ""


class EnergyCounter:
    """The total-energy counter of one GPU: read_mj() -> millijoules."""

    def __init__(self, nvml, handle, uuid: str):
        self._nvml = nvml
        self._handle = handle
        self.uuid = uuid

    def read_mj(self) -> int:
        return self._nvml.total_energy_mj(self._handle)


def energy_counter(nvml, uuid):
    """(EnergyCounter, "") for the GPU of that UUID, or (None, why not).

    nvml is an Nvml (or a stand-in with the same methods); None says NVML
    is not there, and then the reason is the caller's."""
    if nvml is None:
        return None, "NVML not available"
    if not uuid:
        return None, "the task's device has no known UUID, and no other GPU may be read in its place"
    if uuid.startswith("MIG-"):
        return None, "a MIG instance: NVML's energy counter is the whole GPU's, shared by its instances"
    try:
        handle = nvml.device_by_uuid(uuid)
        if nvml.mig_enabled(handle):
            return None, f"{uuid} has MIG mode on: its energy counter is shared by its instances"
        nvml.total_energy_mj(handle)   # Not Supported (before Volta) shows here
    except NvmlError as exc:
        return None, f"the energy counter of {uuid} cannot be read: {exc}"
    return EnergyCounter(nvml, handle, uuid), ""


def driver_version(nvml):
    """The driver's version string, or None when NVML cannot say."""
    if nvml is None:
        return None
    try:
        v = nvml.driver_version()
    except NvmlError:
        return None
    return v or None
