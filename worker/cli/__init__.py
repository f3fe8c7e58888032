"""The wabot command line: builders, channels, credentials, documents, the inbox, retries
and serving.
"""
