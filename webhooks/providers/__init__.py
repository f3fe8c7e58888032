"""The provider webhooks: Twilio and Meta signatures, parsing, and delivery statuses."""
