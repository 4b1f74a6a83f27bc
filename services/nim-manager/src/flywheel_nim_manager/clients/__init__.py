"""Adapters of nim-manager's ports: NMP deployments and the kit's publisher."""
