"""Inbound media reaching the model: fetching a user's files from the provider, keeping
them once, hearing voice notes, reading documents, and showing photos to the model."""
