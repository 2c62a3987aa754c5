"""The `can` backend against simulated modules on python-can's virtual bus (fake clock)."""

from __future__ import annotations

from collections.abc import Iterator

import can
import pytest
from hal_rigs import CanRig, unique_channel

from hal.backends.can import CanBackend, ModuleHealth
from hal.backends.can.protocol import (
    BROADCAST,
    CONTROLLER,
    DEVICE_MODULE,
    Command,
    Direction,
    FrameId,
    MalformedFrame,
    ModuleStatus,
    StatusBits,
    pack_milli_pair,
    pack_output,
    unpack_milli_pair,
    unpack_output,
)
from hal.interfaces import EmergencyStopActive, HalError, PowerSupplyMode, SetpointOutOfRange

M = PowerSupplyMode


@pytest.fixture
def rig() -> Iterator[CanRig]:
    r = CanRig(addresses=(1, 2, 3))
    yield r
    r.close()


def connect(rig: CanRig) -> None:
    rig.board.close_contactors()
    rig.run(0.2)
    assert rig.board.contactors_closed


# ---- frame layout ------------------------------------------------------------------------


def test_identifier_layout() -> None:
    fid = FrameId(
        error=0,
        device=DEVICE_MODULE,
        command=Command.SET_OUTPUT,
        destination=0x03,
        source=CONTROLLER,
    )
    # 000 1010 011100 00000011 11110000
    assert fid.encode() == 0b000_1010_011100_00000011_11110000 == 0x029C03F0
    assert FrameId.decode(0x029C03F0) == fid
    reply = FrameId.decode(0x0E83F003)  # error 3, device 0x0A, READ_OUTPUT, to 0xF0 from 3
    assert (reply.error, reply.device, reply.command, reply.destination, reply.source) == (
        3,
        0x0A,
        0x03,
        0xF0,
        0x03,
    )
    with pytest.raises(MalformedFrame):
        FrameId.decode(1 << 29)
    with pytest.raises(ValueError):
        FrameId(8, 0, 0, 0, 0).encode()


def test_payload_layouts_are_big_endian() -> None:
    assert pack_milli_pair(450.0, 33.5) == bytes.fromhex("0006ddd0 000082dc")
    assert unpack_milli_pair(bytes.fromhex("0006ddd0000082dc")) == (450.0, 33.5)
    assert pack_output(1.0, -2.0) == bytes.fromhex("3f800000 c0000000")
    assert unpack_output(pack_output(400.5, -12.25)) == (400.5, -12.25)
    with pytest.raises(MalformedFrame):
        unpack_output(bytes.fromhex("7fc00000 00000000"))  # NaN
    status = ModuleStatus(Direction.DISCHARGE, True, 45, StatusBits.DISCHARGING)
    assert status.pack() == bytes.fromhex("01 00 55 00 00000080")
    assert ModuleStatus.unpack(status.pack()) == status
    with pytest.raises(MalformedFrame):
        ModuleStatus.unpack(bytes.fromhex("05 00 55 00 00000000"))


# ---- sharing, modes, measurement ---------------------------------------------------------


def test_modules_are_found_and_capabilities_add_up(rig: CanRig) -> None:
    rig.run(0.2)
    psu = rig.can.power_supply
    assert all(m.health is ModuleHealth.OK for m in psu.modules.values())
    caps = psu.capabilities
    assert caps.bidirectional
    assert caps.max_charge_current == 150.0 and caps.max_discharge_current == 150.0
    assert not psu.degraded


def test_charge_current_is_shared_equally(rig: CanRig) -> None:
    connect(rig)
    psu = rig.power_supply
    psu.set_mode(M.EXPORT)
    psu.set_voltage_current(450.0, 90.0)
    rig.run(1.0)
    assert [m.current for m in rig.rack.modules.values()] == pytest.approx([30.0] * 3)
    m = psu.measurement()
    assert m.current == pytest.approx(90.0)
    assert rig.t - rig.can.power_supply.status_interval <= m.timestamp <= rig.t
    assert m.voltage == pytest.approx(rig.rack.battery.ocv + 90.0 * 0.1, abs=0.01)


def test_discharge_uses_the_import_direction_and_cutoff(rig: CanRig) -> None:
    connect(rig)
    psu = rig.power_supply
    psu.set_mode(M.IMPORT)
    psu.set_voltage_current(300.0, -60.0)
    rig.run(1.0)
    for module in rig.rack.modules.values():
        assert module.direction is Direction.DISCHARGE
        assert module.cutoff_voltage == 300.0
        assert module.current == pytest.approx(-20.0)
    assert psu.measurement().current == pytest.approx(-60.0)
    # A cut-off above the battery stops the discharge.
    psu.set_voltage_current(rig.rack.battery.ocv + 5.0, -60.0)
    rig.run(0.3)
    assert psu.measurement().current == pytest.approx(0.0, abs=0.01)


def test_precharge_regulates_the_open_output_voltage(rig: CanRig) -> None:
    rig.run(0.1)
    psu = rig.power_supply
    psu.set_mode(M.PRECHARGE)
    psu.set_voltage_current(380.0, 2.0)
    rig.run(1.0)
    assert psu.measurement().voltage == pytest.approx(380.0)
    psu.set_mode(M.OFF)
    rig.run(1.0)
    assert psu.measurement().voltage == pytest.approx(0.0)
    assert all(not m.on for m in rig.rack.modules.values())


def test_setpoints_beyond_the_sum_of_modules_are_refused(rig: CanRig) -> None:
    rig.run(0.1)
    rig.power_supply.set_mode(M.EXPORT)
    with pytest.raises(SetpointOutOfRange):
        rig.power_supply.set_voltage_current(450.0, 151.0)


# ---- degradation -------------------------------------------------------------------------


def test_module_dropping_out_mid_discharge_is_derated_and_redistributed(rig: CanRig) -> None:
    connect(rig)
    psu = rig.can.power_supply
    psu.set_mode(M.IMPORT)
    psu.set_voltage_current(300.0, -90.0)
    rig.run(1.0)
    assert psu.measurement().current == pytest.approx(-90.0)

    rig.rack.drop_out(2)
    t_drop = rig.t
    rig.run(1.0, until=lambda: psu.modules[2].health is ModuleHealth.LOST)
    assert rig.t - t_drop <= psu.module_timeout + 0.05
    assert psu.degraded
    assert psu.fault is None
    lost = [e for e in psu.events if e.kind == "module_lost"]
    assert [e.module for e in lost] == [2]
    caps = psu.capabilities
    assert caps.max_discharge_current == 100.0 and caps.max_charge_current == 100.0
    rig.run(0.5)
    # The remaining two carry the whole setpoint: 45 A each.
    assert rig.rack.modules[1].current == pytest.approx(-45.0)
    assert rig.rack.modules[3].current == pytest.approx(-45.0)
    assert psu.measurement().current == pytest.approx(-90.0)
    assert psu.effective_current == pytest.approx(-90.0)


def test_derating_below_the_setpoint_is_reported(rig: CanRig) -> None:
    connect(rig)
    psu = rig.can.power_supply
    psu.set_mode(M.IMPORT)
    psu.set_voltage_current(300.0, -140.0)
    rig.run(1.0)
    rig.rack.drop_out(1)
    rig.run(1.0)
    assert psu.effective_current == pytest.approx(-100.0)  # 2 x 50 A
    assert psu.measurement().current == pytest.approx(-100.0)
    assert any(e.kind == "derated" for e in psu.events)


def test_fault_bit_takes_a_module_out_and_it_can_rejoin(rig: CanRig) -> None:
    connect(rig)
    psu = rig.can.power_supply
    psu.set_mode(M.EXPORT)
    psu.set_voltage_current(450.0, 60.0)
    rig.run(1.0)
    rig.rack.set_fault(3, StatusBits.OVER_TEMPERATURE)
    rig.run(0.3)
    assert psu.modules[3].health is ModuleHealth.FAULT
    assert psu.degraded
    assert any(e.kind == "module_fault" and e.module == 3 for e in psu.events)
    assert not rig.rack.modules[3].on  # told to switch off
    rig.run(0.5)
    assert rig.rack.modules[1].current == pytest.approx(30.0)
    rig.rack.restore(3)
    rig.run(0.6)
    assert psu.modules[3].health is ModuleHealth.OK
    assert any(e.kind == "module_recovered" for e in psu.events)
    rig.run(0.5)
    # Back, but held off: the host never switches a module on by itself.
    assert [m.current for m in rig.rack.modules.values()] == pytest.approx([30.0, 30.0, 0.0])
    assert not rig.rack.modules[3].on and psu.degraded
    psu.set_mode(M.OFF)  # control asks for power again (from OFF): it rejoins
    psu.set_mode(M.EXPORT)
    psu.set_voltage_current(450.0, 60.0)
    rig.run(0.5)
    assert [m.current for m in rig.rack.modules.values()] == pytest.approx([20.0] * 3)
    assert not psu.degraded
    assert any(e.kind == "module_released" and e.module == 3 for e in psu.events)


def test_all_modules_lost_is_a_fault(rig: CanRig) -> None:
    connect(rig)
    psu = rig.can.power_supply
    psu.set_mode(M.EXPORT)
    psu.set_voltage_current(450.0, 60.0)
    rig.run(0.5)
    for a in (1, 2, 3):
        rig.rack.drop_out(a)
    rig.run(1.0, until=lambda: psu.fault is not None)
    assert psu.fault is not None and "all 3" in psu.fault
    assert psu.mode is M.OFF
    assert any(e.kind == "all_lost" for e in psu.events)
    with pytest.raises(HalError):
        psu.set_mode(M.EXPORT)
    assert psu.measurement().timestamp < rig.t - 0.4  # nothing fresh to report


def test_missing_module_at_start_is_lost_after_the_grace_time() -> None:
    r = CanRig(addresses=(1, 2))
    try:
        r.rack.drop_out(2)
        r.run(0.3)
        assert r.can.power_supply.modules[2].health is ModuleHealth.UNKNOWN
        r.run(0.5)
        assert r.can.power_supply.modules[2].health is ModuleHealth.LOST
        assert r.can.power_supply.capabilities.max_charge_current == 50.0
    finally:
        r.close()


def test_emergency_stop_interlock(rig: CanRig) -> None:
    rig.run(0.1)
    rig.board.emergency_stop()
    with pytest.raises(EmergencyStopActive):
        rig.power_supply.set_mode(M.EXPORT)


def test_foreign_malformed_and_error_frames_are_survived(rig: CanRig) -> None:
    rig.run(0.2)
    psu = rig.can.power_supply
    bus = rig.rack_bus
    bus.send(can.Message(arbitration_id=0x123, is_extended_id=False, data=b"\x01"))
    bus.send(can.Message(arbitration_id=0x1FFFFFFF, is_extended_id=True, data=bytes(8)))
    bad_output = FrameId(0, DEVICE_MODULE, Command.READ_OUTPUT, CONTROLLER, 1).encode()
    bus.send(can.Message(arbitration_id=bad_output, is_extended_id=True, data=b"\x01\x02"))
    error_reply = FrameId(3, DEVICE_MODULE, Command.SET_OUTPUT, CONTROLLER, 2).encode()
    bus.send(can.Message(arbitration_id=error_reply, is_extended_id=True, data=bytes(8)))
    bus.send(can.Message(arbitration_id=0x7FF, is_extended_id=False, is_remote_frame=True))
    rig.run(0.2)
    assert psu.stats.foreign >= 3
    assert psu.stats.malformed == 1
    assert psu.stats.error_replies == 1
    assert all(m.health is ModuleHealth.OK for m in psu.modules.values())
    psu.set_mode(M.PRECHARGE)
    psu.set_voltage_current(400.0, 2.0)
    rig.run(0.5)
    assert psu.measurement().voltage > 0


def test_broadcast_reads_and_per_module_writes(rig: CanRig) -> None:
    sniffer = can.Bus(interface="virtual", channel=rig.can.channel)
    try:
        rig.run(0.1)
        rig.power_supply.set_mode(M.EXPORT)
        rig.power_supply.set_voltage_current(450.0, 30.0)
        rig.run(0.05)
        frames = []
        while (msg := sniffer.recv(timeout=0)) is not None:
            frames.append(FrameId.decode(msg.arbitration_id))
        from_host = [f for f in frames if f.source == CONTROLLER]
        reads = {f.destination for f in from_host if f.command == Command.READ_OUTPUT}
        assert reads == {BROADCAST}
        writes = [f for f in from_host if f.command == Command.SET_OUTPUT]
        # set_mode and set_voltage_current each send every module its own share.
        assert sorted(f.destination for f in writes) == [1, 1, 2, 2, 3, 3]
        assert all(f.device == DEVICE_MODULE and f.error == 0 for f in from_host)
    finally:
        sniffer.shutdown()


def test_module_switches_itself_off_without_the_controller() -> None:
    r = CanRig(addresses=(1,), rack_options={"comm_timeout": 0.5})
    try:
        connect(r)
        r.power_supply.set_mode(M.EXPORT)
        r.power_supply.set_voltage_current(450.0, 20.0)
        r.run(0.5)
        assert r.rack.total_current == pytest.approx(20.0)
        t = r.t
        for _ in range(40):  # the controller stops; only the module runs
            t += 0.02
            r.rack.step(t)
        assert r.rack.total_current == 0.0
        assert r.rack.modules[1].can_timeout
    finally:
        r.close()


def test_create_backend_needs_a_channel_for_real_interfaces() -> None:
    with pytest.raises(ValueError):
        CanBackend(interface="socketcan")
    backend = CanBackend(interface="virtual", channel=unique_channel())
    backend.close()


# ---- the host trusts no stale status and re-enables no module by itself (issue 11) --------


def test_a_module_whose_status_stops_is_lost_even_if_its_output_still_comes(
    rig: CanRig,
) -> None:
    connect(rig)
    psu = rig.can.power_supply
    psu.set_mode(M.EXPORT)
    psu.set_voltage_current(450.0, 60.0)
    rig.run(0.5)
    rig.rack.mute_status.add(2)  # output readings go on, the status (fault bits) stops
    rig.rack.set_fault(2, StatusBits.OVER_TEMPERATURE)  # ... so this fault never arrives
    rig.run(1.0, until=lambda: psu.modules[2].health is ModuleHealth.LOST)
    assert psu.modules[2].health is ModuleHealth.LOST
    lost = [e for e in psu.events if e.kind == "module_lost" and e.module == 2]
    assert lost and "no fresh status" in lost[0].text
    assert psu.modules[2].output_time is not None and psu.modules[2].output_time > rig.t - 0.2
    assert 2 not in psu.usable_modules and psu.degraded


def test_modules_back_after_all_were_lost_stay_off_until_a_new_session(rig: CanRig) -> None:
    connect(rig)
    psu = rig.can.power_supply
    psu.set_mode(M.EXPORT)
    psu.set_voltage_current(450.0, 60.0)
    rig.run(0.5)
    for a in (1, 2, 3):
        rig.rack.drop_out(a)
    rig.run(1.0, until=lambda: psu.fault is not None)
    assert psu.fault is not None and psu.mode is M.OFF
    for a in (1, 2, 3):
        rig.rack.restore(a)
    rig.run(1.0)
    assert all(m.health is ModuleHealth.OK for m in psu.modules.values())
    assert psu.fault is not None  # still reported: nothing came back by itself
    assert not any(m.on for m in rig.rack.modules.values())
    rig.can.acknowledge_faults(rig.t)  # a new session
    assert psu.fault is None and not psu.degraded
    psu.set_mode(M.EXPORT)
    psu.set_voltage_current(450.0, 30.0)
    rig.run(0.5)
    assert [m.current for m in rig.rack.modules.values()] == pytest.approx([10.0] * 3)
