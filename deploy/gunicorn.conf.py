"""gunicorn settings for the newsletter web processes, installed as
/etc/newsletter/gunicorn.conf.py (``gunicorn -c`` that path, as deploy/newsletter-web.service).

The app is ``newsletter:create_app()`` (the installed package; no checkout needed).
"""

import os

wsgi_app = "newsletter:create_app()"
bind = os.environ.get("NEWSLETTER_BIND", "127.0.0.1:8000")
# Requests are short and mostly wait on PostgreSQL: 2 per core is a good start.
workers = int(os.environ.get("NEWSLETTER_WEB_WORKERS", "2"))
timeout = 30
# nginx is the only client: trust its X-Forwarded-* (the app's ProxyFix counts the proxies).
forwarded_allow_ips = "127.0.0.1"
# No gunicorn access log: it writes raw paths, and confirmation/unsubscribe paths hold tokens.
# The app logs one line per request by route rule (NEWSLETTER_LOG_FORMAT=json).
accesslog = None


def child_exit(server, worker):  # noqa: ARG001 - gunicorn's hook signature
    """Tell prometheus-client a web worker is gone, so its live gauges stop being summed."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
