"""Polling decisions: the policy, the learned timing model, the schedule, the simulation."""
