"""HTTP routers, one per NMP area (all three NMP hosts share one port: their paths differ)."""
