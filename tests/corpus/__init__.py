"""The labelled corpus: samples per rule pack and whole tool calls (see labelled.py)."""
