"""Exception types shared by every part of usfast (see DESIGN.md, "Errors and bad input")."""


class InputError(ValueError):
    """Bad input: shape, dtype, stride, size, parameter range or non-finite values.

    The message names the function and the argument and says what was expected.
    """


class BackendUnavailable(RuntimeError):
    """The requested backend is not present here; the message says why."""


class CudaError(RuntimeError):
    """A CUDA call failed; the message carries cudaGetErrorString, file and line."""


def fail(func: str, arg: str, expected: str, got=None) -> "InputError":
    """Build an InputError with the house format: ``func(arg): expected ...; got ...``."""
    msg = f"{func}({arg}): expected {expected}"
    if got is not None:
        msg += f"; got {got}"
    return InputError(msg)
