"""Clients for remote model APIs (standard library HTTP, retries and usage accounting)."""
