# Home Assistant MQTT discovery for the device's readings (optional: imported only with
# mqtt.ha_discovery set). Pure functions, like m2m.report.contract.
import json

from m2m.report.contract import STATUS, TELEMETRY, _name_ok, _SEP, check_id, topic

# https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery: topic
# <discovery_prefix>/<component>/[<node_id>/]<object_id>/config, ids of [a-zA-Z0-9_-]; payload a JSON
# object; availability "online" / "offline"; retained configs are replayed when HA connects.
# SenML unit -> (HA unit, device class, scale)
_HA = (("Cel", "°C", "temperature", 1), ("%RH", "%", "humidity", 1), ("Pa", "Pa", "pressure", 1),
       ("V", "V", "voltage", 1), ("/", "%", "battery", 100))


def discovery(prefix, device_id, name, unit, ha_prefix="homeassistant"):
    # (topic, payload) announcing one reading (publish retained).
    oid = "".join(c if _name_ok(c, "") or c in "-_" else "_" for c in name)
    cfg = {
        "name": name,
        "unique_id": "%s_%s" % (check_id(device_id), oid),
        "state_topic": topic(prefix, device_id, TELEMETRY),
        "availability_topic": topic(prefix, device_id, STATUS),
        # the status is JSON with its units (mqtt.units "status") or plain "online"; the last will is
        # plain "offline". HA sets value_json only for a JSON payload (helpers/template.py
        # async_render_with_possible_json_value) and compares the result with "online" / "offline"
        "availability_template": "{{ value_json.state if value_json is defined else value }}",
        "device": {"identifiers": [device_id], "name": device_id, "manufacturer": "m2mkit"},
    }
    scale = 1
    for u, ha_unit, cls, k in _HA:
        if u == unit:
            cfg["unit_of_measurement"] = ha_unit
            cfg["device_class"] = cls
            scale = k
    if unit and "unit_of_measurement" not in cfg:
        cfg["unit_of_measurement"] = unit
    if "device_class" in cfg:
        cfg["state_class"] = "measurement"
    # a telemetry message that lacks this reading makes the template fail, and "if the template
    # throws an error, the current state will be used instead" (home-assistant.io/integrations/sensor.mqtt)
    cfg["value_template"] = ("{%% set r = value_json | selectattr('n', 'eq', '%s') | list %%}"
                             "{{ r[0].v * %d }}" % (name, scale))
    return "%s/sensor/%s/%s/config" % (ha_prefix, device_id, oid), json.dumps(cfg, separators=_SEP).encode()
