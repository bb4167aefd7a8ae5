"""Where live bars come from: a replay of recorded bars, an exchange's WebSocket."""
