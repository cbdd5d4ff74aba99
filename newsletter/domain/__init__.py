"""Business rules: subscriptions, accounts, tokens, releases, digests.

Nothing here knows about HTTP requests or SMTP; callers commit.
"""
