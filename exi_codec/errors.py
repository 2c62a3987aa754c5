"""Codec errors. Both carry the element path; decode errors also the bit offset."""

from __future__ import annotations


class ExiError(ValueError):
    """Base of the codec's errors; `path` names the element where it happened."""

    def __init__(self, message: str, path: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = path if path is not None else []

    @property
    def path_str(self) -> str:
        return "/" + "/".join(self.path)

    def __str__(self) -> str:
        return f"{self.path_str}: {self.message}"


class ExiDecodeError(ExiError):
    """The stream is not a valid EXI encoding of the schema (truncated, out of range, ...)."""

    def __init__(self, message: str, bit_offset: int, path: list[str] | None = None) -> None:
        super().__init__(message, path)
        self.bit_offset = bit_offset

    def __str__(self) -> str:
        return f"{self.path_str} (bit {self.bit_offset}): {self.message}"

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.message, self.bit_offset, self.path))


class ExiEncodeError(ExiError):
    """The value cannot be encoded: wrong type, out of the schema's range/length, bad structure."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.message, self.path))
