FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

COPY pyproject.toml constraints.txt README.md alembic.ini ./
COPY db db
COPY worker worker
COPY webhooks webhooks
RUN pip install --no-cache-dir -c constraints.txt . \
    && useradd --create-home --uid 10001 wabot

USER wabot
EXPOSE 8000
CMD ["uvicorn", "webhooks.app:app", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
