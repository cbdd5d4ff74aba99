"""delivery exactly once: claim tokens on deliveries and outbox, release carriers

Revision ID: 0002
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claim_token', sa.String(length=32), nullable=True))
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claim_token', sa.String(length=32), nullable=True))
    op.create_table('release_carriers',
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('release_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('digest_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['digest_id'], ['digests.id'], name=op.f('fk_release_carriers_digest_id_digests'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['release_id'], ['releases.id'], name=op.f('fk_release_carriers_release_id_releases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('language', 'release_id', name=op.f('pk_release_carriers'))
    )
    with op.batch_alter_table('release_carriers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_release_carriers_digest_id'), ['digest_id'], unique=False)
    # Releases already carried by a sent or sending digest stay carried.
    op.execute(
        "INSERT INTO release_carriers (language, release_id, digest_id) "
        "SELECT r.language, r.id, MIN(d.id) FROM digest_releases dr "
        "JOIN digests d ON d.id = dr.digest_id JOIN releases r ON r.id = dr.release_id "
        "WHERE d.status IN ('sending', 'sent') GROUP BY r.language, r.id"
    )


def downgrade():
    with op.batch_alter_table('release_carriers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_release_carriers_digest_id'))
    op.drop_table('release_carriers')
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_column('claim_token')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('claim_token')
