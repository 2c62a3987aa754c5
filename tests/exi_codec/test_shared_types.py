"""The -20 schema modules share one class per CommonTypes/xmldsig type (exi_codec/schemas/
iso20_common.py): a header, a RationalNumber or a Signature built with one module's class goes
into another module's message. -2 and DIN keep their own classes (separate standards)."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import pytest

from exi_codec import Message
from exi_codec._model import ExiEnum

ISO20 = ("iso20", "iso20_dc", "iso20_ac", "iso20_wpt", "iso20_acdp")
LOOP_JSON = {"DC_ChargeLoopReq": {
    "Header": {"SessionID": "A1B2C3D4E5F60718", "TimeStamp": 1767225600},
    "MeterInfoRequested": False, "EVPresentVoltage": {"Exponent": -1, "Value": 3995},
    "Scheduled_DC_CLReqControlMode": {"EVTargetCurrent": {"Exponent": 0, "Value": 125},
                                      "EVTargetVoltage": {"Exponent": 0, "Value": 410}}}}


def _mod(name: str) -> ModuleType:
    return importlib.import_module(f"exi_codec.schemas.{name}")


def _types(mod: ModuleType) -> dict[str, type]:
    return {k: v for k, v in vars(mod).items() if isinstance(v, type)
            and issubclass(v, (Message, ExiEnum)) and v not in (Message, ExiEnum)}


def test_a_type_known_to_several_iso20_modules_is_one_class() -> None:
    shared = _mod("iso20_common")
    names = _types(shared)
    assert {"MessageHeaderType", "RationalNumberType", "SignatureType", "SignedInfoType",
            "responseCodeType", "processingType"} <= set(names)
    for schema in ISO20:
        for name, cls in _types(_mod(schema)).items():
            if name in names:
                assert cls is names[name], f"{schema}.{name} is a twin of iso20_common.{name}"
    twins: dict[str, type] = {}
    for schema in ISO20:
        mod = _mod(schema)
        roots = {e[3] for e in mod.DOCUMENT}
        for name, cls in _types(mod).items():
            if cls in roots and cls.__mro__[1] in names.values():
                # A global element's class (e.g. Signature, of SignatureType) is its schema
                # set's: encode() takes the document grammar from it. It subclasses the type.
                assert cls._exi_module is mod  # type: ignore[attr-defined]
                continue
            assert twins.setdefault(name, cls) is cls, f"{schema}.{name} has a twin"


def test_iso2_and_din_keep_their_own_classes() -> None:
    iso20, iso2, din = _mod("iso20"), _mod("iso2"), _mod("din")
    assert iso2.SignatureType is not iso20.SignatureType
    assert din.SignatureType is not iso2.SignatureType


def _loop_req(header_mod: str, number_mod: str) -> Any:
    dc, n = _mod("iso20_dc"), _mod(number_mod).RationalNumberType
    header = _mod(header_mod).MessageHeaderType(session_id=bytes.fromhex("A1B2C3D4E5F60718"),
                                                 time_stamp=1767225600)
    return dc.DC_ChargeLoopReq(
        header=header, meter_info_requested=False, ev_present_voltage=n(exponent=-1, value=3995),
        scheduled_dc_cl_req_control_mode=dc.Scheduled_DC_CLReqControlModeType(
            ev_target_current=n(exponent=0, value=125), ev_target_voltage=n(exponent=0, value=410)))


@pytest.mark.parametrize(("header_mod", "number_mod"),
                         [("iso20", "iso20"), ("iso20", "iso20_ac"), ("iso20_wpt", "iso20_acdp")])
def test_header_from_iso20_is_accepted_in_a_dc_message(codec: ModuleType, header_mod: str,
                                                      number_mod: str) -> None:
    msg = _loop_req(header_mod, number_mod)
    data = codec.encode(msg)  # used to raise "expected MessageHeaderType, got MessageHeaderType"
    own = codec.from_json(LOOP_JSON, "iso20_dc")  # built from the DC module's own tables
    assert data == codec.encode(own)
    assert codec.decode(data, "iso20_dc") == msg == own
    assert codec.to_json(msg) == LOOP_JSON


def test_decoded_header_and_signature_move_between_message_sets(codec: ModuleType) -> None:
    """What the SECC does: a header (with a PnC signature) decoded from a CommonMessages
    message goes into a DC response, and back."""
    iso20, dc = _mod("iso20"), _mod("iso20_dc")
    sig = iso20.SignatureType(
        signed_info=iso20.SignedInfoType(
            canonicalization_method=iso20.CanonicalizationMethodType(
                algorithm="http://www.w3.org/TR/canonical-exi/"),
            signature_method=iso20.SignatureMethodType(
                algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"),
            reference=(iso20.ReferenceType(
                uri="#id1", digest_method=iso20.DigestMethodType(
                    algorithm="http://www.w3.org/2001/04/xmlenc#sha512"),
                digest_value=bytes(64)),)),
        signature_value=iso20.SignatureValueType(value=bytes(132)))
    header = iso20.MessageHeaderType(session_id=bytes(8), time_stamp=1, signature=sig)
    setup = codec.decode(codec.encode(iso20.SessionSetupRes(
        header=header, response_code=iso20.responseCodeType.OK, evseid="DE*ABC*E1")), "iso20")
    res = dc.DC_CableCheckRes(header=setup.header, response_code=setup.response_code,
                              evse_processing=dc.processingType.Finished)
    back = codec.decode(codec.encode(res), "iso20_dc")
    assert back == res and type(back.header) is iso20.MessageHeaderType
    assert back.header.signature == sig
    # the shared SignedInfoType signs the same fragment whichever module built it
    frag = codec.encode_fragment("SignedInfo", sig.signed_info, "iso20", grammar="xmldsig")
    name, value = codec.decode_fragment(frag, "iso20_dc", grammar="xmldsig")
    assert name == "SignedInfo" and codec.fragment_to_json(name, value) == \
        codec.fragment_to_json(name, sig.signed_info)


@pytest.mark.parametrize("schema", ISO20)
def test_a_root_of_a_shared_type_encodes_with_its_own_module(codec: ModuleType,
                                                             schema: str) -> None:
    """Root element classes stay per module even when their type is shared (the document
    grammar, i.e. the root event code, is the schema set's)."""
    mod = _mod(schema)
    sig = mod.Signature(signed_info=mod.SignedInfoType(
        canonicalization_method=mod.CanonicalizationMethodType(algorithm="a"),
        signature_method=mod.SignatureMethodType(algorithm="b"),
        reference=(mod.ReferenceType(digest_method=mod.DigestMethodType(algorithm="c"),
                                     digest_value=b"\0"),)),
        signature_value=mod.SignatureValueType(value=b"\x01"))
    for root in (mod.SignatureValue(value=b"\x01\x02"), sig):
        assert type(root)._exi_module is mod
        data = codec.encode(root)
        assert codec.decode(data, schema) == root
        assert codec.to_json(root) == codec.to_json(codec.decode(data, schema))


# -- the generator's check: a shared type must have the same grammar in every sharing set -------
CT = "urn:iso:std:iso:15118:-20:CommonTypes"
XSD = "http://www.w3.org/2001/XMLSchema"


def _xsd(path: Any, tns: str, body: str, imports: str = "") -> Any:
    path.write_text(f'<xs:schema xmlns:xs="{XSD}" xmlns:ct="{CT}" targetNamespace="{tns}" '
                    f'xmlns="{tns}" elementFormDefault="qualified">{imports}{body}</xs:schema>')
    return path


def _sets(tmp_path: Any, substitute_in_b: bool) -> dict[str, Any]:
    from tools.exigen.xsd import SchemaSet

    _xsd(tmp_path / "common.xsd", CT,
         '<xs:element name="Mode" type="ModeType" abstract="true"/>'
         '<xs:complexType name="ModeType"/>'
         '<xs:complexType name="HolderType"><xs:sequence><xs:element ref="Mode"/>'
         '</xs:sequence></xs:complexType>')
    imp = f'<xs:import namespace="{CT}" schemaLocation="common.xsd"/>'
    sets = {}
    for name in ("a", "b"):
        sub = ('<xs:element name="FastMode" type="ct:ModeType" substitutionGroup="ct:Mode"/>'
               if name == "a" or substitute_in_b else "")
        root = _xsd(tmp_path / f"{name}.xsd", f"urn:test:{name}",
                    f'<xs:element name="Req" type="ct:HolderType"/>{sub}', imp)
        sets[name] = SchemaSet([root])
    return sets


@pytest.mark.parametrize("substitute_in_b", [True, False])
def test_generator_shares_a_type_only_where_its_grammar_is_the_same(
        tmp_path: Any, substitute_in_b: bool) -> None:
    """HolderType's grammar has an event per member of the Mode substitution group, which
    comes from each schema set: where set b has no FastMode, the grammars differ and the
    generator must refuse to share the type rather than encode b's messages with a's grammar."""
    from tools.exigen.emit import SharedTypes, write_module, write_shared

    sets = _sets(tmp_path, substitute_in_b)
    shared = SharedTypes("common", "test types", sets)
    out = tmp_path / "out"
    out.mkdir()
    write_shared(shared, out)
    assert "class HolderType(Message)" in (out / "common.py").read_text()
    write_module(sets["a"], "a", "set a", out, shared)
    if substitute_in_b:
        write_module(sets["b"], "b", "set b", out, shared)
        text = (out / "b.py").read_text()
        assert "HolderType as HolderType," in text and "class HolderType" not in text
    else:
        with pytest.raises(ValueError, match="HolderType.*cannot be shared"):
            write_module(sets["b"], "b", "set b", out, shared)
