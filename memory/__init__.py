"""The local memory store."""
