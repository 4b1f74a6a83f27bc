"""Timed state transitions and the work behind them (deploying, training, evaluating)."""
