"""Test support: in-memory fakes of the ports (`fakes`) and helpers that run nim-manager as a
real process against the real stack (`process`)."""
