"""staff roles, scoped API tokens, audit log, TOTP, outgoing webhooks (issue 14)

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-01 20:45:00

Existing staff accounts become owners (before this, every staff member could do everything).
On PostgreSQL a trigger refuses UPDATE and DELETE on ``audit_log``: the application only
appends, and the database says so too.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0005'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


# As in 0001 (copied, not imported: a migration must not change when other code does): every
# index of a table in one call, every table's indexes dropped with it.
def _create_indexes(table, *indexes):
    """``indexes``: (name, columns, unique); a name in ``op.f()`` is used as it is."""
    with op.batch_alter_table(table, schema=None) as batch_op:
        for name, columns, unique in indexes:
            batch_op.create_index(name, columns, unique=unique)


def _drop_table(table, *indexes):
    """Drop ``indexes`` (names, in this order), then ``table``."""
    if indexes:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name in indexes:
                batch_op.drop_index(name)
    op.drop_table(table)


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('staff_role', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('staff_disabled_at', sa.DateTime(), nullable=True))
    op.execute("UPDATE users SET staff_role = 'owner' WHERE is_staff")

    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scopes', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(), nullable=True))

    op.create_table('audit_log',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor_user_id', sa.BigInteger(), nullable=True),
    sa.Column('actor_token_id', sa.BigInteger(), nullable=True),
    sa.Column('actor_label', sa.String(length=320), nullable=True),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target_type', sa.String(length=32), nullable=True),
    sa.Column('target_ids', sa.Text(), nullable=True),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('details', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    _create_indexes(
        'audit_log',
        (op.f('ix_audit_log_action'), ['action'], False),
        (op.f('ix_audit_log_at'), ['at'], False),
    )

    op.create_table('staff_totp',
    sa.Column('user_id', BIG_ID, nullable=False),
    sa.Column('secret', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('confirmed_at', sa.DateTime(), nullable=True),
    sa.Column('last_step', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_staff_totp_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_staff_totp'))
    )
    op.create_table('staff_recovery_codes',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('user_id', BIG_ID, nullable=False),
    sa.Column('code_hash', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_staff_recovery_codes_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_recovery_codes'))
    )
    _create_indexes('staff_recovery_codes', (op.f('ix_staff_recovery_codes_user_id'), ['user_id'], False))

    op.create_table('webhook_endpoints',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('secret', sa.String(length=100), nullable=False),
    sa.Column('events', sa.Text(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.Column('disabled_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoints'))
    )
    op.create_table('webhook_deliveries',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('endpoint_id', BIG_ID, nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('lease_expires_at', sa.DateTime(), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('delivered_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], name=op.f('fk_webhook_deliveries_endpoint_id_webhook_endpoints'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries'))
    )
    _create_indexes(
        'webhook_deliveries',
        (op.f('ix_webhook_deliveries_endpoint_id'), ['endpoint_id'], False),
        ('ix_webhook_deliveries_status_next_attempt_at', ['status', 'next_attempt_at'], False),
    )

    if op.get_bind().dialect.name == 'postgresql':
        # Append-only, enforced by the database: UPDATE and DELETE raise. (TRUNCATE, an
        # operator's deliberate act, is not a row change and stays possible.)
        op.execute("""
            CREATE FUNCTION audit_log_refuse_change() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
            END;
            $$ LANGUAGE plpgsql
        """)
        op.execute("""
            CREATE TRIGGER audit_log_append_only
            BEFORE UPDATE OR DELETE ON audit_log
            FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change()
        """)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_refuse_change()")
    _drop_table(
        'webhook_deliveries',
        'ix_webhook_deliveries_status_next_attempt_at',
        op.f('ix_webhook_deliveries_endpoint_id'),
    )
    _drop_table('webhook_endpoints')
    _drop_table('staff_recovery_codes', op.f('ix_staff_recovery_codes_user_id'))
    _drop_table('staff_totp')
    _drop_table('audit_log', op.f('ix_audit_log_at'), op.f('ix_audit_log_action'))
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
        batch_op.drop_column('scopes')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('staff_disabled_at')
        batch_op.drop_column('staff_role')
