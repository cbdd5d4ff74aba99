"""public archive: translation links between releases, full-text search index

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-01 20:40:00

The search index is PostgreSQL only: a GIN index over the same expression the archive query
uses (``newsletter.domain.archive.search_vector``), French or English configuration by the
release's language. SQLite searches with LIKE and needs no index. Alembic's autogenerate skips
expression indexes, so ``flask db check`` does not see it.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0003'
branch_labels = None
depends_on = None

# Must stay identical to newsletter.domain.archive.search_vector, or the planner ignores it.
SEARCH_EXPRESSION = (
    "to_tsvector(CASE WHEN language = 'fr' THEN 'french'::regconfig "
    "ELSE 'english'::regconfig END, "
    "coalesce(title, '') || ' ' || coalesce(dateline, '') || ' ' || coalesce(summary, '') "
    "|| ' ' || coalesce(body_html, ''))"
)


def upgrade():
    with op.batch_alter_table('releases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('translation_of_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.create_index(batch_op.f('ix_releases_translation_of_id'), ['translation_of_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_releases_translation_of_id_releases'), 'releases', ['translation_of_id'], ['id'], ondelete='SET NULL')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f"CREATE INDEX ix_releases_search ON releases USING gin ({SEARCH_EXPRESSION})")


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP INDEX IF EXISTS ix_releases_search")
    with op.batch_alter_table('releases', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_releases_translation_of_id_releases'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_releases_translation_of_id'))
        batch_op.drop_column('translation_of_id')
