"""The privacy layer."""
