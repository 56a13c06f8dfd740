-- The sequenced, hash-chained access journal (docs/journal.md).
--
-- osmose-journald moves rows out of journal.intake into journal.entries in one
-- transaction: every intake row lands exactly once. Entries, hash tiles and
-- checkpoints are append-only for every role: no UPDATE, DELETE or TRUNCATE is
-- granted, and triggers refuse them even to a table owner who grants himself the
-- right. The cryptographic checks of `osmosectl journal verify` remain the proof;
-- these rules keep honest mistakes and compromised daemons from rewriting history.

CREATE TABLE journal.entries (
    seq             bigint NOT NULL CHECK (seq >= 0),
    sequenced_at    timestamptz NOT NULL,
    intake_id       bigint NOT NULL,
    canonical       bytea NOT NULL CHECK (octet_length(canonical) BETWEEN 1 AND 65535),
    leaf_hash       bytea NOT NULL CHECK (octet_length(leaf_hash) = 32),
    chain_hash      bytea NOT NULL CHECK (octet_length(chain_hash) = 32),
    -- Copies of canonical fields for the security officer's searches. Not hashed:
    -- `verify` checks that they equal what the canonical bytes say, and `search`
    -- re-checks every hit against the canonical bytes.
    occurred_at     timestamptz NOT NULL,
    actor_user_id   uuid,
    actor_team      text,
    action          text NOT NULL,
    patient_id      uuid,
    purpose         text,
    result          text NOT NULL,
    PRIMARY KEY (seq, sequenced_at)
) PARTITION BY RANGE (sequenced_at);

CREATE INDEX entries_patient ON journal.entries (patient_id, seq) WHERE patient_id IS NOT NULL;
CREATE INDEX entries_actor ON journal.entries (actor_user_id, seq) WHERE actor_user_id IS NOT NULL;
-- occurred_at follows the sequence closely: a BRIN index serves period searches at
-- a fraction of a B-tree's cost per appended row.
CREATE INDEX entries_occurred ON journal.entries USING brin (occurred_at) WITH (pages_per_range = 32);

-- Full hash tiles of C2SP tlog-tiles (height 8): 256 hashes of 32 bytes. A tile at
-- level L holds the tree's nodes at height 8·L. Partial tiles are never stored: they
-- are derived from the entries' leaf hashes and the full tiles below. Tiles outlive
-- the purge of a month's entries, so every checkpoint and proof stays verifiable.
CREATE TABLE journal.tiles (
    level       smallint NOT NULL CHECK (level BETWEEN 0 AND 7),
    tile_index  bigint NOT NULL CHECK (tile_index >= 0),
    hashes      bytea NOT NULL CHECK (octet_length(hashes) = 8192),
    PRIMARY KEY (level, tile_index)
);

-- Every signed checkpoint ever issued, numbered from 1 without gaps.
CREATE TABLE journal.checkpoints (
    id          bigint PRIMARY KEY CHECK (id >= 1),
    tree_size   bigint NOT NULL CHECK (tree_size >= 0),
    root_hash   bytea NOT NULL CHECK (octet_length(root_hash) = 32),
    issued_at   timestamptz NOT NULL,
    note        text NOT NULL
);

CREATE INDEX checkpoints_size ON journal.checkpoints (tree_size);

-- The journal's head, one row, updated by osmose-journald with a compare-and-set
-- on tree_size so that two daemons can never both append.
CREATE TABLE journal.head (
    singleton           boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    tree_size           bigint NOT NULL CHECK (tree_size >= 0),
    chain_hash          bytea NOT NULL CHECK (octet_length(chain_hash) = 32),
    last_sequenced_at   timestamptz NOT NULL,
    checkpoints         bigint NOT NULL CHECK (checkpoints >= 0)
);
INSERT INTO journal.head VALUES (true, 0, '\x0000000000000000000000000000000000000000000000000000000000000000', '-infinity', 0);

CREATE FUNCTION journal.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'journal.%: % refused, the journal is append-only', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON journal.entries
    FOR EACH ROW EXECUTE FUNCTION journal.refuse_change();
CREATE TRIGGER entries_no_change BEFORE UPDATE OR DELETE OR TRUNCATE ON journal.entries
    FOR EACH STATEMENT EXECUTE FUNCTION journal.refuse_change();
CREATE TRIGGER tiles_append_only BEFORE UPDATE OR DELETE ON journal.tiles
    FOR EACH ROW EXECUTE FUNCTION journal.refuse_change();
CREATE TRIGGER tiles_no_change BEFORE UPDATE OR DELETE OR TRUNCATE ON journal.tiles
    FOR EACH STATEMENT EXECUTE FUNCTION journal.refuse_change();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON journal.checkpoints
    FOR EACH ROW EXECUTE FUNCTION journal.refuse_change();
CREATE TRIGGER checkpoints_no_change BEFORE UPDATE OR DELETE OR TRUNCATE ON journal.checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION journal.refuse_change();

-- Monthly partitions (UTC), created by osmose-journald ahead of need through this
-- function, which runs with its owner's rights so that the daemon itself cannot
-- create, alter or drop tables. Each partition gets its own statement guard
-- (statement triggers are not inherited; row triggers are). Statement guards also
-- refuse an UPDATE or DELETE that matches no row.
CREATE FUNCTION journal.ensure_month(month_start date) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    first_day date := date_trunc('month', month_start)::date;
    partition_name text := format('entries_%s', to_char(first_day, 'YYYY_MM'));
BEGIN
    IF to_regclass(format('journal.%I', partition_name)) IS NOT NULL THEN
        RETURN partition_name;
    END IF;
    EXECUTE format(
        'CREATE TABLE journal.%I PARTITION OF journal.entries FOR VALUES FROM (%L) TO (%L)',
        partition_name, first_day::text || ' 00:00:00+00', (first_day + interval '1 month')::date::text || ' 00:00:00+00');
    EXECUTE format('REVOKE ALL ON journal.%I FROM PUBLIC', partition_name);
    EXECUTE format(
        'CREATE TRIGGER %I BEFORE UPDATE OR DELETE OR TRUNCATE ON journal.%I FOR EACH STATEMENT EXECUTE FUNCTION journal.refuse_change()',
        partition_name || '_no_change', partition_name);
    RETURN partition_name;
END
$$;

-- Wake osmose-journald (LISTEN osmose_journal_intake) once per inserting statement.
CREATE FUNCTION journal.notify_intake() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('osmose_journal_intake', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER intake_notify AFTER INSERT ON journal.intake
    FOR EACH STATEMENT EXECUTE FUNCTION journal.notify_intake();

REVOKE ALL ON journal.entries, journal.tiles, journal.checkpoints, journal.head FROM PUBLIC;
REVOKE ALL ON FUNCTION journal.ensure_month(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION journal.ensure_month(date) TO osmose_journald;

GRANT SELECT, INSERT ON journal.entries, journal.tiles, journal.checkpoints TO osmose_journald;
GRANT SELECT, UPDATE ON journal.head TO osmose_journald;
-- The daemon moves intake rows into the journal (DELETE in the same transaction as
-- the INSERT into entries) and receives events from its local socket (INSERT).
GRANT SELECT, INSERT, DELETE ON journal.intake TO osmose_journald;
GRANT USAGE ON SEQUENCE journal.intake_id_seq TO osmose_journald;

GRANT SELECT ON journal.entries, journal.tiles, journal.checkpoints, journal.head TO osmose_auditor;
