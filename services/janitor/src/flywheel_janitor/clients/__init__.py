"""Adapters of the janitor's ports: NMP for reclaiming and for listing what runs."""
