"""[[connectors]] link keys: interface, modem, pilot options (one link per connector)."""

from __future__ import annotations

import pytest

from evse.config import ConfigError, loads_config

BASE = """
[station]
id = "ST1"

{connectors}

[limits]
max_voltage = 500
max_charge_current = 100
max_charge_power = 50000

[tls]
allow_plain_tcp_iso20 = true

[network]
interface = "eth1"
"""


def connector(cid: int, extra: str = "") -> str:
    return f'[[connectors]]\nid = {cid}\ntype = "DC"\n{extra}\n'


def test_defaults_bind_no_link() -> None:
    c = loads_config(BASE.format(connectors=connector(1))).connectors[0]
    assert c.interface is None and c.modem == "qca7000"
    assert c.digital_communication and c.basic_charging_fallback and not c.plugged


def test_each_connector_on_its_interface() -> None:
    cfg = loads_config(BASE.format(connectors=(
        connector(1, 'interface = "plc1"\nmodem = "simulated"\nplugged = true')
        + connector(2, 'interface = "plc2"\ndigital_communication = false'))))
    one, two = cfg.connectors
    assert (one.interface, one.modem, one.plugged) == ("plc1", "simulated", True)
    assert (two.interface, two.modem, two.digital_communication) == ("plc2", "qca7000", False)


@pytest.mark.parametrize(("extra", "error"), [
    ('interface = "a/b"', "connectors[0].interface: must be a network interface name"),
    ('modem = "homeplug"', "connectors[0].modem"),
    ("plugged = 1", "connectors[0].plugged: must be true or false"),
])
def test_bad_link_keys(extra: str, error: str) -> None:
    with pytest.raises(ConfigError) as info:
        loads_config(BASE.format(connectors=connector(1, extra)))
    assert any(e.startswith(error) for e in info.value.errors), info.value.errors


def test_one_interface_one_connector() -> None:
    with pytest.raises(ConfigError) as info:
        loads_config(BASE.format(connectors=connector(1, 'interface = "plc1"')
                                 + connector(2, 'interface = "plc1"')))
    assert "connectors: interface 'plc1' bound to more than one connector" in info.value.errors


def test_every_connector_or_none_on_a_link() -> None:
    with pytest.raises(ConfigError) as info:
        loads_config(BASE.format(connectors=connector(1, 'interface = "plc1"') + connector(2)))
    assert "connectors: either every connector has an interface or none" in info.value.errors
