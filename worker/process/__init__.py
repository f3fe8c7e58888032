"""What a worker process runs on: its runtime (engine, channels, model), event loop,
sweeper and metrics.
"""
