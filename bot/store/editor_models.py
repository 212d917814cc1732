"""The editors' workspace (migration 0005_editor): the knowledge base's articles live here, and the
index snapshot is built from the published set of this table (never from the folder once seeded).

- KbArticle: one article in one locale (stable ``article_id``, its translation ``group``). ``head_version``
  is the latest saved version (optimistic concurrency: a save names the version it edited);
  ``published_version`` is what customers see (None: not live). ``status`` is the workflow state of
  the head: draft, in_review, published, archived.
- KbArticleVersion: every save, immutable.
- KbReview: an approval or rejection of one version.
- KbAuditEntry: who did what, when.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class KbArticle(Base):
    __tablename__ = "kb_articles"
    __table_args__ = (UniqueConstraint("group_id", "locale", name="uq_kb_articles_group_locale"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[str] = mapped_column(String(128), unique=True)
    group_id: Mapped[str] = mapped_column(String(128), index=True)
    locale: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    tags: Mapped[list] = mapped_column(JSON, default=list)  # of the head version (for filtering)
    title: Mapped[str] = mapped_column(String(500))  # of the head version (for listing)
    head_version: Mapped[int] = mapped_column(Integer, default=1)
    published_version: Mapped[int | None] = mapped_column(Integer)
    publish_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    scheduled_by: Mapped[int | None] = mapped_column(Integer)  # Agent.id
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_by: Mapped[int | None] = mapped_column(Integer)  # Agent.id (None: the system)


class KbArticleVersion(Base):
    __tablename__ = "kb_article_versions"
    __table_args__ = (UniqueConstraint("article_pk", "number", name="uq_kb_versions_article_number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_pk: Mapped[int] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    questions: Mapped[list] = mapped_column(JSON, default=list)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    author_id: Mapped[int | None] = mapped_column(Integer)  # Agent.id (None: imported by the system)
    note: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class KbReview(Base):
    __tablename__ = "kb_reviews"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_pk: Mapped[int] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    decision: Mapped[str] = mapped_column(String(16))  # approved | rejected
    comment: Mapped[str | None] = mapped_column(Text)
    reviewer_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class KbAuditEntry(Base):
    __tablename__ = "kb_audit_log"
    __table_args__ = (Index("ix_kb_audit_article", "article_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(Integer)  # Agent.id (None: the system, e.g. the scheduler)
    action: Mapped[str] = mapped_column(String(40))
    article_id: Mapped[str | None] = mapped_column(String(128))
    version: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
