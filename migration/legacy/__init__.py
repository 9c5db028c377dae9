"""The legacy MySQL side: its schemas, a realistic seed and web-app-like traffic."""
