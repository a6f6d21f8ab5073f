"""Model backends behind the ModelBackend seam."""
