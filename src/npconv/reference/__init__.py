"""Naive reference implementations: obviously correct, slow, never imported by a fast path."""
