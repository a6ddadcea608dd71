"""python manage.py ensure_admin: create the admin account once and say how to log in."""

from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a superuser 'admin' if none exists (password from REFIND_ADMIN_PASSWORD or generated)."

    def handle(self, *args, **options) -> None:
        users = get_user_model()
        secret_file = settings.DATA_DIR / "admin-password.txt"
        if users.objects.filter(is_superuser=True).exists():
            hint = f"the password in {secret_file}" if secret_file.exists() else "your existing admin password"
            self.stdout.write(f"Admin login: an admin account exists; use {hint}.")
            return
        password = os.environ.get("REFIND_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        users.objects.create_superuser("admin", "admin@localhost", password)
        if "REFIND_ADMIN_PASSWORD" in os.environ:
            self.stdout.write("Admin login: user 'admin', the password in REFIND_ADMIN_PASSWORD.")
            return
        secret_file.parent.mkdir(parents=True, exist_ok=True)
        secret_file.write_text(password + "\n")
        secret_file.chmod(0o600)
        self.stdout.write(f"Admin login: user 'admin', password {password!r} (saved in {secret_file}).")
