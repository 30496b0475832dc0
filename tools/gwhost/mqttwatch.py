"""Counts (and keeps the last of) the MQTT messages a live run's firmware publishes."""

import json
import threading

import paho.mqtt.client as mqtt


class MqttWatch:
    def __init__(self, host, port, topic="#"):
        self.host, self.port, self.topic = host, port, topic
        self.count = 0
        self.last = {}  # topic -> payload (bytes)
        self._lock = threading.Lock()
        self._c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="gw-sim-watch")
        self._c.on_connect = lambda c, u, f, rc, p=None: c.subscribe(self.topic)
        self._c.on_message = self._on_message

    def _on_message(self, client, userdata, msg):
        with self._lock:
            self.count += 1
            self.last[msg.topic] = msg.payload

    def last_json(self, suffix):
        """The last payload on a topic ending with `suffix`, decoded as JSON (or None)."""
        with self._lock:
            for topic, payload in self.last.items():
                if topic.endswith(suffix):
                    return json.loads(payload)
        return None

    def start(self):
        self._c.connect(self.host, self.port, keepalive=30)
        self._c.loop_start()
        return self

    def stop(self):
        try:
            self._c.disconnect()
        finally:
            self._c.loop_stop()
