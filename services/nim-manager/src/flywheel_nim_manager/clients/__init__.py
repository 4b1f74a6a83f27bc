"""Adapters of nim-manager's ports: NMP deployments (events go out through the kit's `emit`)."""
