"""Mail: rendering (Jinja over ``templates/emails/``), MIME building and transports.

Knows nothing of subscribers or accounts: callers pass plain values.
"""
