# One image for every Lockgate process: the four services, `lockgate migrate` and the CLI.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Pinned dependencies first, so code changes do not invalidate this layer.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

COPY pyproject.toml README.md ./
COPY libs/ libs/
COPY services/ services/
COPY data/ data/
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf build ./*.egg-info

# The catalog's content store (LOCKGATE_CONTENT_DIR, var/content) must be writable by the
# unprivileged user; compose and Kubernetes mount a volume there.
RUN useradd --system --uid 10001 --no-create-home --home-dir /app lockgate \
    && mkdir -p /app/var/content && chown -R lockgate /app/var
USER lockgate

CMD ["lockgate", "--help"]
