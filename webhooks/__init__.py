"""Webhooks (SPEC §11): endpoints per environment, the outbox of messages to deliver, and the log of every attempt.

Other apps hand events to `webhooks.outbox.publish` inside their own transaction; the worker delivers them.
"""
