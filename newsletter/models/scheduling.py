"""The scheduler's own tables: who holds the lease, and APScheduler's job store."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Float, LargeBinary, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db


class SchedulerLease(db.Model):
    """Who runs the scheduler: a lease row renewed by the holder, taken over when it lapses."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(DateTime)


# APScheduler's job store table, declared here so the schema comes only from migrations.
apscheduler_jobs = Table(
    "apscheduler_jobs",
    db.Model.metadata,
    Column("id", String(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)
