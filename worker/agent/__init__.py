"""The builder's agent: its instructions and tools, knowledge search, the offline model and
the OpenAI client.
"""
