"""Typed handler tables, shared by the standards (iso20, iso2, din).

A handler is `handle(req, session, inputs) -> (res, effects)` with the request and response
classes of its message pair: `HandlerResult[DC_ChargeLoopRes]`. A machine looks handlers up
by the request's element name, so its table holds `entry(RequestClass, handle)`: a callable
that takes any decoded message, checks it is of the handler's request class and calls it.
The table then needs no `Any`, and a request routed to the wrong handler fails loudly
(a TypeError, answered FAILED at the machine's boundary) instead of reading wrong fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from evse.protocol.events import Effect
from exi_codec import Message

ReqT = TypeVar("ReqT", bound=Message)
ResT = TypeVar("ResT", bound=Message)
SessionT = TypeVar("SessionT")
InputsT = TypeVar("InputsT")

# What a handler returns, typed by its response class: HandlerResult[DC_ChargeLoopRes].
HandlerResult = tuple[ResT, list[Effect]]
# A table entry for a standard's session and inputs types: Handler[Session, Inputs].
Handler = Callable[[Message, SessionT, InputsT], tuple[Message, list[Effect]]]


def entry(request: type[ReqT],
          handle: Callable[[ReqT, SessionT, InputsT], tuple[ResT, list[Effect]]]
          ) -> Callable[[Message, SessionT, InputsT], tuple[Message, list[Effect]]]:
    """The table entry of `handle` for requests of class `request` (see the module doc)."""

    def checked(req: Message, session: SessionT, inputs: InputsT
                ) -> tuple[Message, list[Effect]]:
        if not isinstance(req, request):
            raise TypeError(f"{handle.__name__} takes {request.__name__}, got "
                            f"{type(req).__name__}")
        return handle(req, session, inputs)

    checked.__name__ = checked.__qualname__ = handle.__name__
    checked.__doc__ = handle.__doc__
    checked.__wrapped__ = handle  # type: ignore[attr-defined]
    return checked


__all__ = ["Handler", "HandlerResult", "entry"]
