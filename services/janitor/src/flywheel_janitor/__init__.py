"""Flywheel janitor: a ledger of every live NIM and job per run, built from the events, and the
reclaiming of what a cancelled, failed, stale or shut-down run, or nobody at all, still holds."""
