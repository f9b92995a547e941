"""Hostile input for the ingest pipeline, generated at test time (see corpus.py)."""
