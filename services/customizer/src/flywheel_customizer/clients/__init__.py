"""Adapters of the customizer's ports: NMP (events go out through the kit's `emit`)."""
