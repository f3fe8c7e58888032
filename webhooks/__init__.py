"""The ASGI side: provider webhooks and the inbox writer (the webhook app), the dashboard
and web chat.
"""
