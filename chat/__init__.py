"""The chat-room server."""

# The server's release, as GET /api/health reports it.
__version__ = "1.1.0"
