# The sample app's image as a team would write it: what `go run ./bench -image-build dockerfile`
# puts in app/ for the Dagger build (the engine builds it: image-build dockerfile), and what the
# baseline gives `docker build` (BASE pointed at the dev mirror). The same file both ways.
ARG BASE=python:3.13-slim
FROM ${BASE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp
COPY requirements.txt /tmp/requirements.txt
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt
COPY . /app
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH
USER 10001:10001
EXPOSE 8080
CMD ["gunicorn", "--bind", "0.0.0.0:8080", "webapp:create_app()"]
