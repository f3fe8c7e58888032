"""Outbound channels: sending replies through Twilio, Meta's Cloud API or the console, and
classifying their failures.
"""
