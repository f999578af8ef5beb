"""Alerts (SPEC §11): per (feature, customer, billing period) alert states with a log of every change, entitlement
`usage_limit_reached` once per reset period, evaluated by the worker for the pairs ingest marked."""
