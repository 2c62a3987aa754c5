"""Base classes of the generated message types.

Messages are immutable tuple subclasses: the decoder builds them with one tuple allocation, they
compare and hash by value, and fields are read through small properties. Field order: attributes,
then child elements in schema order, then `value` for simple content.
"""

from __future__ import annotations

from enum import StrEnum
from operator import itemgetter
from typing import Any, ClassVar

from ._tables import AT, CH, SE


class ExiEnum(StrEnum):
    """Enumerated values by their XSD name; they compare equal to plain strings."""


class Message(tuple):  # type: ignore[type-arg]
    """A decoded (or to-be-encoded) element of complex type."""

    __slots__ = ()
    _exi_grammar: ClassVar[int] = -1
    _exi_module: ClassVar[Any] = None
    # (xsd name, field index, is_list, datatype index | None, grammar index | None)
    _exi_fields: ClassVar[tuple[tuple[str, int, bool, int | None, int | None], ...]] = ()
    _exi_json_single: ClassVar[tuple[str, ...]] = ()

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = tuple.__hash__

    def __repr__(self) -> str:
        names = type(self)._py_names()
        inner = ", ".join(f"{n}={v!r}" for n, v in zip(names, self, strict=True)
                          if v is not None and v != ())
        return f"{type(self).__name__}({inner})"

    @classmethod
    def _py_names(cls) -> tuple[str, ...]:
        return tuple(n for n, v in vars_chain(cls) if isinstance(v, _Field))

    def replace(self, **changes: Any) -> Any:
        """A copy with some fields changed (like dataclasses.replace)."""
        names = type(self)._py_names()
        values = list(self)
        for k, v in changes.items():
            values[names.index(k)] = v
        return tuple.__new__(type(self), values)

    def to_json(self) -> dict[str, Any]:
        from ._json import message_to_json

        return message_to_json(self)


def vars_chain(cls: type) -> list[tuple[str, Any]]:
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        out.update(vars(klass))
    fields = [(k, v) for k, v in out.items() if isinstance(v, _Field)]
    return sorted(fields, key=lambda kv: kv[1].index)


class _Field(property):
    index: int


def _field(index: int) -> Any:
    p = _Field(itemgetter(index))
    p.index = index
    return p


def _bind(module_name: str, grammars: tuple[Any, ...], datatypes: tuple[Any, ...]) -> None:
    """Attach grammar indices and JSON field metadata to the generated classes.

    A class shared by several schema modules (iso20_common) is bound once, by the shared module:
    its grammar and datatype indices are the same in every module that shares it, because each
    one's tables start with the shared tables. Root element classes belong to their own module
    (encode() finds the document grammar through them), even when their type is shared.
    """
    import sys

    module = sys.modules[module_name]
    del datatypes
    for _uri, _name, _gid, root in getattr(module, "DOCUMENT", ()):
        if root is not None:
            root._exi_module = module
    for gid, (cls, names, flags, states) in enumerate(grammars):
        if cls is None or cls._exi_grammar != -1 and "_exi_grammar" in vars(cls):
            continue
        kinds: list[tuple[int | None, int | None]] = [(None, None)] * len(names)
        for _bits, prods in states:
            for kind, f, arg, _nxt in prods:
                if kind in (AT, CH):
                    kinds[f] = (arg, None)
                elif kind == SE:
                    sub = grammars[arg]
                    if sub[0] is None:  # simple-typed element: its CH datatype
                        kinds[f] = (sub[3][0][1][0][2], None)
                    else:
                        kinds[f] = (None, arg)
        cls._exi_grammar = gid
        cls._exi_module = module
        cls._exi_fields = tuple(
            (name, i, flags[i], kinds[i][0], kinds[i][1]) for i, name in enumerate(names)
        )

