"""Errors: one exception class per pkv_status, carrying the status and pkv_last_error()'s message."""
from ._structs import Status


class PatternKVError(Exception):
    """A call failed. .status is the pkv_status (a Status), .message what went wrong (pkv_last_error()
    for an error of the library; a sentence of the Python module for input it refused before the call)."""

    status = None

    def __init__(self, message, status=None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = Status(status)

    def __str__(self):
        name = self.status.name if self.status is not None else "ERROR"
        return f"PKV_ERR_{name}: {self.message}" if self.status not in (None, Status.OK) else self.message


class InvalidArgumentError(PatternKVError, ValueError):
    status = Status.INVALID_ARGUMENT


class DTypeError(InvalidArgumentError, TypeError):
    """An array of a dtype the library does not take (only float32 and float16), or not an array."""


class InvalidConfigError(PatternKVError, ValueError):
    status = Status.INVALID_CONFIG


class NonFiniteError(PatternKVError, ValueError):
    status = Status.NONFINITE


class ShapeError(PatternKVError, ValueError):
    status = Status.SHAPE


class UnknownSequenceError(PatternKVError, LookupError):
    status = Status.UNKNOWN_SEQUENCE


class LayerRangeError(PatternKVError, IndexError):
    status = Status.LAYER_RANGE


class OutOfBudgetError(PatternKVError):
    status = Status.OUT_OF_BUDGET


class OutOfDeviceMemoryError(PatternKVError):
    status = Status.OUT_OF_DEVICE_MEMORY


class OutOfHostMemoryError(PatternKVError, MemoryError):
    status = Status.OUT_OF_HOST_MEMORY


class BackendUnavailableError(PatternKVError):
    status = Status.BACKEND_UNAVAILABLE


class DeviceError(PatternKVError):
    status = Status.DEVICE


class FileError(PatternKVError):
    status = Status.IO


class CorruptFileError(PatternKVError):
    status = Status.CORRUPT_FILE


class UnsupportedError(PatternKVError):
    status = Status.UNSUPPORTED


BY_STATUS = {cls.status: cls for cls in (
    InvalidArgumentError, InvalidConfigError, NonFiniteError, ShapeError, UnknownSequenceError, LayerRangeError,
    OutOfBudgetError, OutOfDeviceMemoryError, OutOfHostMemoryError, BackendUnavailableError, DeviceError, FileError,
    CorruptFileError, UnsupportedError)}


def check(lib, status):
    """Raises the exception of a failed pkv_status, with pkv_last_error() of this thread."""
    if status == Status.OK:
        return
    msg = lib.pkv_last_error().decode("utf-8", "replace")
    if not msg:
        msg = lib.pkv_status_string(status).decode("utf-8", "replace").split(": ", 1)[-1]
    try:
        st = Status(status)
    except ValueError:
        raise PatternKVError(f"unknown status {status}: {msg}") from None
    raise BY_STATUS[st](msg, st)
