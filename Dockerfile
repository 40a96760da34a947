FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY . .
RUN DJANGO_SETTINGS_MODULE=bms.settings.local python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["gunicorn", "bms.wsgi:application", "--bind", "0.0.0.0:8000"]
