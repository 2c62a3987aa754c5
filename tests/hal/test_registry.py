from importlib.metadata import EntryPoint
from typing import Any

import pytest

import hal.registry as registry
from hal.backends.sim import SimBackend
from hal.registry import (
    BackendNotFound,
    available_backends,
    create_backend,
    register_backend,
    resolve_backend,
    unregister_backend,
)


class PluginBackend(SimBackend):
    name = "plugin"

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.options = options


class NotABackend:
    pass


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> list[EntryPoint]:
    found: list[EntryPoint] = []

    def fake_entry_points(*, group: str) -> list[EntryPoint]:
        assert group == "evse.hal_backends"
        return found

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    return found


def test_sim_is_built_in() -> None:
    assert "sim" in available_backends()
    assert resolve_backend("sim") is SimBackend
    backend = create_backend("sim", meter_id="M-1")
    assert isinstance(backend, SimBackend)
    assert backend.meter.meter_id == "M-1"


def test_unknown_backend() -> None:
    with pytest.raises(BackendNotFound, match="sim"):
        create_backend("no-such-backend")


def test_real_entry_points_are_queried_without_error() -> None:
    assert set(available_backends()) >= {"sim"}


def test_entry_point_plugin(plugins: list[EntryPoint]) -> None:
    plugins.append(EntryPoint("plugin", f"{__name__}:PluginBackend", "evse.hal_backends"))
    assert "plugin" in available_backends()
    backend = create_backend("plugin", answer=42)
    assert isinstance(backend, PluginBackend)
    assert backend.options == {"answer": 42}


def test_entry_point_cannot_shadow_a_builtin(plugins: list[EntryPoint]) -> None:
    plugins.append(EntryPoint("sim", f"{__name__}:PluginBackend", "evse.hal_backends"))
    assert resolve_backend("sim") is SimBackend


def test_entry_point_must_name_a_backend_class(plugins: list[EntryPoint]) -> None:
    plugins.append(EntryPoint("bogus", f"{__name__}:NotABackend", "evse.hal_backends"))
    with pytest.raises(TypeError):
        resolve_backend("bogus")


def test_runtime_registration() -> None:
    register_backend("mine", PluginBackend)
    try:
        assert resolve_backend("mine") is PluginBackend
        with pytest.raises(ValueError):
            register_backend("mine", PluginBackend)
        with pytest.raises(ValueError):
            register_backend("sim", PluginBackend)
    finally:
        unregister_backend("mine")
    assert "mine" not in available_backends()


def test_replacing_a_builtin_needs_replace_true() -> None:
    register_backend("sim", f"{__name__}:PluginBackend", replace=True)
    try:
        assert resolve_backend("sim") is PluginBackend
    finally:
        unregister_backend("sim")
    assert resolve_backend("sim") is SimBackend
