"""The surfaces people run (web app, command-line helpers), each a thin layer over ``Assistant``."""

__all__: list[str] = []
