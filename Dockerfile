# One image for web, worker and beat. Build: docker build -t refind .
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 REFIND_ENV=production REFIND_DATA_DIR=/data
WORKDIR /app
COPY requirements.txt .
ARG EXTRA_PIP=""
RUN pip install --no-cache-dir -r requirements.txt ${EXTRA_PIP}
COPY . .
RUN DJANGO_SECRET_KEY=build-only-not-secret-build-only-not-secret-build-only python manage.py collectstatic --noinput -v0
RUN useradd --create-home refind && mkdir -p /data /storage && chown refind /data /storage
USER refind
EXPOSE 8000
CMD ["gunicorn", "webapp.wsgi", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4", "--timeout", "120"]
