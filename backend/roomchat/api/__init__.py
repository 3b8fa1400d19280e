"""HTTP and WebSocket routes: thin layers that validate, call, answer."""
