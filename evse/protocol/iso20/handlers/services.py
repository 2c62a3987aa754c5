"""ServiceDiscovery, ServiceDetail and ServiceSelection.

Parameter sets: one per configured control mode, numbered by the ControlMode value
(1 Scheduled, 2 Dynamic). Parameter names and values as in -20 ServiceDetail:
Connector, ControlMode, EVSENominalVoltage (AC), MobilityNeedsMode (1 provided by the EV, 2 by
the EV and the SECC), Pricing (0 none, 1 absolute), BPTChannel, GeneratorMode,
DetectionMethod_GridCodeIslanding (AC_BPT).

ServiceSelection must name a service whose ServiceDetail the EV asked for (the state table
already requires at least one ServiceDetail after ServiceDiscovery).
"""

from __future__ import annotations

from evse.protocol.config import AC_SERVICES, BPT_SERVICES, ControlMode, SeccConfig, ServiceId
from evse.protocol.errors import (
    NoEnergyTransferServiceSelected,
    ServiceIDInvalid,
    ServiceSelectionInvalid,
)
from evse.protocol.events import EnergyServiceSelected
from evse.protocol.iso20.handlers.common import HandlerResult, Inputs, res_header
from evse.protocol.session import Session
from exi_codec.schemas import iso20
from exi_codec.schemas.iso20 import (
    ServiceDetailReq,
    ServiceDetailRes,
    ServiceDiscoveryReq,
    ServiceDiscoveryRes,
    ServiceSelectionReq,
    ServiceSelectionRes,
)


def parameter_sets(config: SeccConfig, service: ServiceId) -> dict[int, dict[str, int]]:
    """{ParameterSetID: {parameter name: int value}} for one of our services."""
    sets: dict[int, dict[str, int]] = {}
    for mode in config.control_modes:
        params: dict[str, int] = {}
        if service in AC_SERVICES:
            params["Connector"] = 2 if config.limits.phases > 1 else 1
            params["ControlMode"] = int(mode)
            params["EVSENominalVoltage"] = round(config.limits.nominal_voltage)
        else:
            params["Connector"] = config.dc_connector
            params["ControlMode"] = int(mode)
        params["MobilityNeedsMode"] = config.mobility_needs_mode
        params["Pricing"] = 1 if config.pricing else 0
        if service in BPT_SERVICES:
            params["BPTChannel"] = config.bpt_channel
            params["GeneratorMode"] = config.generator_mode
            if service == ServiceId.AC_BPT:
                params["DetectionMethod_GridCodeIslanding"] = config.grid_islanding_detection
        sets[int(mode)] = params
    return sets


def handle_service_discovery(
    req: ServiceDiscoveryReq, session: Session, inputs: Inputs
) -> HandlerResult[ServiceDiscoveryRes]:
    offered = list(inputs.config.services_for(session.protocol))
    if req.supported_service_i_ds is not None:
        wanted = set(req.supported_service_i_ds.service_id)
        offered = [s for s in offered if s in wanted]
    if not offered:
        raise NoEnergyTransferServiceSelected("no energy transfer service in common with the EV")
    session.offered_services = tuple(offered)
    services = tuple(
        iso20.ServiceType(service_id=int(s), free_service=inputs.config.free_service)
        for s in offered
    )
    res = ServiceDiscoveryRes(
        header=res_header(iso20, session, inputs),
        response_code=iso20.responseCodeType.OK,
        service_renegotiation_supported=False,
        energy_transfer_service_list=iso20.ServiceListType(service=services),
    )
    return res, []


def handle_service_detail(
    req: ServiceDetailReq, session: Session, inputs: Inputs
) -> HandlerResult[ServiceDetailRes]:
    if req.service_id not in session.offered_services:
        raise ServiceIDInvalid(f"service {req.service_id} was not offered")
    service = ServiceId(req.service_id)
    if service not in session.detailed_services:
        session.detailed_services += (service,)
    sets = tuple(
        iso20.ParameterSetType(
            parameter_set_id=set_id,
            parameter=tuple(
                iso20.ParameterType(name=name, int_value=value) for name, value in params.items()
            ),
        )
        for set_id, params in parameter_sets(inputs.config, service).items()
    )
    res = ServiceDetailRes(
        header=res_header(iso20, session, inputs),
        response_code=iso20.responseCodeType.OK,
        service_id=int(service),
        service_parameter_list=iso20.ServiceParameterListType(parameter_set=sets),
    )
    return res, []


def handle_service_selection(
    req: ServiceSelectionReq, session: Session, inputs: Inputs
) -> HandlerResult[ServiceSelectionRes]:
    selected = req.selected_energy_transfer_service
    if selected.service_id not in session.offered_services:
        raise ServiceSelectionInvalid(f"service {selected.service_id} was not offered")
    service = ServiceId(selected.service_id)
    if service not in session.detailed_services:
        raise ServiceSelectionInvalid(f"no ServiceDetail was requested for service {service}")
    if selected.parameter_set_id not in parameter_sets(inputs.config, service):
        raise ServiceSelectionInvalid(f"no parameter set {selected.parameter_set_id}")
    if req.selected_vas_list is not None:
        raise ServiceSelectionInvalid("no value-added services are offered")
    session.service = service
    session.parameter_set_id = int(selected.parameter_set_id)
    session.control_mode = ControlMode(selected.parameter_set_id)
    res = ServiceSelectionRes(
        header=res_header(iso20, session, inputs), response_code=iso20.responseCodeType.OK
    )
    effect = EnergyServiceSelected(
        service_id=int(service), control_mode=int(session.control_mode), bidirectional=session.bpt
    )
    return res, [effect]
