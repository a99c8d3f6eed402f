"""Test doubles that users may also run: a loopback OpenAI-compatible server."""
