"""Scheduling: the worker process, APScheduler set-up and jobs. Calls delivery."""
