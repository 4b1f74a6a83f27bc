"""Adapters to what the evaluator talks to: chat endpoints and the NMP Data Store."""
