"""Adapters that let other frameworks use the appliance over its HTTP API (optional extras)."""
