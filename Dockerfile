# The image the Helm chart runs: `cwn worker`, `cwn connect <kind>` and the import Job.
FROM python:3.11.7-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY connectors ./connectors
COPY schemas ./schemas
RUN pip install . && useradd --uid 10001 --user-group --no-create-home cwn
USER 10001:10001
WORKDIR /var/lib/cwn
ENTRYPOINT ["cwn"]
CMD ["worker"]
