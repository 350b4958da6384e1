# The integration-test harness (tests/integration/broker.c, client.c: real mosquitto brokers on
# loopback and a libmosquitto test client) and its own suite. Later MQTT suites reuse the two
# helper sources the same way: SOURCES integration/broker.c integration/client.c.
pelix_unit_test(harness MODULES util DIR integration LABEL integration
                SOURCES integration/broker.c integration/client.c)
