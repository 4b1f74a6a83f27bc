"""Flywheel customizer: LoRA customization jobs in NMP, driven from Mongo records so that they
survive restarts and never run twice for one run and candidate."""
