"""Test support: fakes of the customizer's ports, input events, and the customizer as a process
(for its own suites and for end-to-end suites that need a running customizer)."""
