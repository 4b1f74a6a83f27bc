"""Adapters of the customizer's ports: NMP and the Kafka publisher."""
