"""Issue 12's attack scenario (``make fuzz``): see ``bench/attack/__main__.py``."""
