"""SetVariables values kept across a restart (evse/ocpp/variable_store.py): stored when
Accepted, applied again through the same checks, refused ones dropped."""

from __future__ import annotations

from pathlib import Path

from evse.ocpp.device_model import DeviceModel, Variable, non_negative_int
from evse.ocpp.variable_store import VariableStore


def model(settings: dict[str, int]) -> DeviceModel:
    dm = DeviceModel()

    def setter(name: str) -> Variable:
        def put(v: str) -> None:
            settings[name] = non_negative_int(v)
        return Variable(lambda: str(settings.get(name, 0)), put)

    dm.add("AlignedDataCtrlr", "Interval", setter("aligned"))
    dm.add("SampledDataCtrlr", "TxUpdatedInterval", setter("sampled"))
    dm.add("EVSE", "Power", setter("evse1"), evse=1)
    dm.add("SecurityCtrlr", "Identity", Variable(lambda: "CS1"))  # read-only
    return dm


def test_accepted_values_survive_a_restart_refused_ones_are_not_kept(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    first: dict[str, int] = {}
    store = VariableStore(db)
    dm = model(first)
    assert store.attach(dm) == [] and first == {}  # nothing stored yet
    assert dm.set("AlignedDataCtrlr", "Interval", "900") == "Accepted"
    assert dm.set("AlignedDataCtrlr", "Interval", "-1") == "Rejected"  # not stored
    assert dm.set("EVSE", "Power", "7", evse=1) == "Accepted"
    assert dm.set("SecurityCtrlr", "Identity", "X") == "Rejected"
    assert dm.set("SampledDataCtrlr", "TxUpdatedInterval", "30") == "Accepted"
    assert dm.set("SampledDataCtrlr", "TxUpdatedInterval", "60") == "Accepted"  # the last
    store.close()

    second: dict[str, int] = {}
    store = VariableStore(db)  # the restart
    assert store.attach(model(second)) == []
    assert second == {"aligned": 900, "evse1": 7, "sampled": 60}
    store.close()

    # a later firmware without that variable (or with a stricter check): dropped
    third: dict[str, int] = {}
    dm = DeviceModel()
    dm.add("SampledDataCtrlr", "TxUpdatedInterval",
           Variable(lambda: "0", lambda v: third.update(sampled=int(v))))
    store = VariableStore(db)
    refused = store.attach(dm)
    assert sorted(refused) == [("AlignedDataCtrlr", None, "Interval", "900"),
                               ("EVSE", 1, "Power", "7")]
    assert third == {"sampled": 60}
    assert store.stored() == [("SampledDataCtrlr", None, "TxUpdatedInterval", "60")]
    store.close()
