"""Issue 15's fault scenarios (``make chaos``): see ``bench/chaos/__main__.py``."""
