"""What every process needs before it touches a table: settings, logging, log context,
credential encryption, signatures, the clock.
"""
