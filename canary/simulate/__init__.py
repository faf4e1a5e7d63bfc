"""A discrete-event simulator of whole-fleet rollouts: the real planner, executor, judge and API
budget against a simulated AWS on virtual time (``python -m canary.simulate``)."""
