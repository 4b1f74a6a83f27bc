"""The customizer's own failure, beside the kit's retryable/permanent taxonomy and NMP's typed
errors (flywheel_contracts.runtime.nmp), which it reuses."""

from flywheel_contracts.errors import FlywheelError


class LeaseLost(FlywheelError):
    """A record was not in the phase this instance expected: another instance took over the
    reconciler lease. This instance stops acting on it; the holder carries on."""
