"""The real backend: deployments of one model id served by real llama-server processes.

Opt-in (`NMP_EMULATOR_REAL__ENABLED`); with it off nothing here is built and the heuristic models
answer everything. `servers.py` owns the processes (start, readiness, stop), `process.py` makes
each one die with the emulator, `lifecycle.py` moves deployments through their states from the
servers' health, `routing.py` decides which chat requests go to a server, `proxy.py` forwards
them, and `adapters.py` is the seam through which a trainer makes a customized model servable.
"""
