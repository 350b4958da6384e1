# MQTT topic names, filters and the filter trie (src/mqtt/topic).
pelix_unit_test(mqtt_topic MODULES mqtt_topic util)
pelix_unit_test(mqtt_trie MODULES mqtt_topic util THREADED)
pelix_unit_test(mqtt_trie_paths MODULES mqtt_topic util)
