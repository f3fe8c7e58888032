FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# Every uvicorn started in the image (CMD, compose's web and dashboard) closes clients too
# slow to send their request (REQUEST_READ_TIMEOUT_SECONDS).
ENV UVICORN_HTTP=webhooks.read_deadline:ReadDeadlineProtocol
WORKDIR /app

COPY pyproject.toml constraints.txt README.md alembic.ini ./
COPY db db
COPY worker worker
COPY webhooks webhooks
RUN pip install --no-cache-dir -c constraints.txt . \
    && useradd --create-home --uid 10001 wabot

USER wabot
EXPOSE 8000
# The provider webhooks; the same image serves the dashboard with
# `uvicorn webhooks.dashboard.server:app` (compose's dashboard service).
CMD ["uvicorn", "webhooks.app:app", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
