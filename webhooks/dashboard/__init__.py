"""The dashboard and web chat: an ASGI app of its own, served beside the webhooks by wabot serve."""
