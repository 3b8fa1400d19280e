"""The benchmark harness behind ``make bench``: roomchat against a FastAPI-docs baseline."""
