"""Accounts: registration, login, passwords, tokens, and the users a token may speak for."""
