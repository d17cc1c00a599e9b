"""Prompt texts (markdown with front matter), shipped as package data."""
