"""Package."""
__all__ = []
