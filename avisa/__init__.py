"""Avisa's command line and local development runner."""
