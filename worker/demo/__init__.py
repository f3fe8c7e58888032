"""make demo: a real receiver and worker on embedded defaults, driven by signed webhooks."""
