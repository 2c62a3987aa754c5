"""The handler tables are typed (issue 12 item 6): each entry takes requests of its own class
only and its handler's result is typed by the response class of that request."""

from __future__ import annotations

import pytest

from evse.protocol.config import ISO20_DC, SeccConfig
from evse.protocol.iso20.handlers import HANDLERS
from evse.protocol.iso20.handlers.common import Inputs
from evse.protocol.iso20.messages import REQUESTS
from evse.protocol.session import ChargerState, Session
from exi_codec.schemas import iso2, iso20


def test_every_entry_names_its_response_class() -> None:
    for name, entry in HANDLERS.items():
        handler = entry.__wrapped__  # type: ignore[attr-defined]
        response = REQUESTS[name].response
        assert handler.__annotations__["return"] == f"HandlerResult[{response}]", name
        assert entry.__name__ == handler.__name__


def test_an_entry_refuses_a_request_of_another_class() -> None:
    other = iso20.SessionStopReq(
        header=iso20.MessageHeaderType(session_id=bytes(8), time_stamp=0),
        charging_session="Terminate")
    session = Session(protocol=ISO20_DC)
    config = SeccConfig()
    inputs = Inputs(now=0.0, timestamp=0, config=config,
                    charger=ChargerState(limits=config.limits))
    with pytest.raises(TypeError, match="handle_session_setup takes SessionSetupReq, got "
                                        "SessionStopReq"):
        HANDLERS["SessionSetupReq"](other, session, inputs)


def test_din_entries_are_typed_by_their_response_class() -> None:
    from evse.protocol.din.handlers import HANDLERS as DIN_HANDLERS

    for name, entry in DIN_HANDLERS.items():
        annotation = entry.__wrapped__.__annotations__["return"]  # type: ignore[attr-defined]
        assert annotation.startswith("HandlerResult[din.") and "Res" in annotation, name
    other = iso20.SessionStopReq(
        header=iso20.MessageHeaderType(session_id=bytes(8), time_stamp=0),
        charging_session="Terminate")
    with pytest.raises(TypeError, match="takes SessionSetupReqType, got SessionStopReq"):
        DIN_HANDLERS["SessionSetupReq"](other, None, None)  # type: ignore[arg-type]


def test_iso2_entries_are_typed_by_their_response_class() -> None:
    from evse.protocol.iso2.handlers import HANDLERS as ISO2_HANDLERS
    from evse.protocol.iso2.messages import REQUESTS as ISO2_REQUESTS

    assert set(ISO2_HANDLERS) <= set(ISO2_REQUESTS)
    for name, entry in ISO2_HANDLERS.items():
        handler = entry.__wrapped__  # type: ignore[attr-defined]
        response = f"iso2.{name.removesuffix('Req')}ResType"
        assert handler.__annotations__["return"] == f"HandlerResult[{response}]", name
        assert entry.__name__ == handler.__name__
    other = iso2.SessionStopReqType(charging_session="Terminate")
    with pytest.raises(TypeError, match="handle_session_setup takes SessionSetupReqType, got "
                                        "SessionStopReqType"):
        ISO2_HANDLERS["SessionSetupReq"](other, None, None)  # type: ignore[arg-type]
