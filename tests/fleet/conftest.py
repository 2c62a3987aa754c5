from tests.mqtt.conftest import broker  # noqa: F401  (the real mosquitto fixture)
