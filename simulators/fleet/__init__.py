"""`evse fleet-sim N`: N simulated stations (charger + simulated car each) behind one MQTT
broker, and an example aggregator that makes the fleet follow a grid power request.

- `cars`: the seeded fleet plan (which car visits which station when, with what battery);
- `station`: one station in an asyncio loop (SeccServer on loopback, sim HAL, SeccStationPort
  + MqttBridge on the shared broker, its simulated cars coming and going);
- `worker`: a process running a share of the stations (`--processes K`);
- `broker`: a mosquitto started on a free port when no `--broker` is given;
- `dispatch`: the pure split of a fleet request by headroom, departure needs and wear;
- `aggregator`: the example aggregator (MQTT API only) and its report.

docs/fleet.md describes the whole and how it scales past one machine.
"""
