"""Attacks on explanations: ``input`` (Ghorbani, Dombrowski), ``tabular`` (Slack, Dimanov)."""
