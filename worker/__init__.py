"""The worker side: the Celery app and task, answering conversations, the builder's agent,
outbound channels, the wabot CLI and the demo.
"""
