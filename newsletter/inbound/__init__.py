"""What comes back: bounces, complaints and mailto unsubscribes, by SMTP/LMTP, IMAP or webhook.

One processor (``processor``) serves every way in; it sits at the delivery level of the layers.
"""
