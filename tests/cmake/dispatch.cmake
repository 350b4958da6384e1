# Dispatch queues of the MQTT service (src/mqtt/dispatch): threaded, so also built with TSan.
pelix_unit_test(mqtt_dispatch MODULES mqtt_dispatch util THREADED)
