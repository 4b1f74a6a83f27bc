"""The small CPU "models": retrieval and heuristics that never see a reference answer."""
