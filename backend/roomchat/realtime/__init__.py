"""Rooms in real time: events, the room manager, brokers and socket sessions."""
