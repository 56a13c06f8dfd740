-- Cold archives of journal months, and the only way a month's entries leave the
-- database (docs/retention.md, "Journal months").
--
-- A month is archived by writing its entries, its checkpoints and the hash tiles
-- that tie them to the first checkpoint after it into an encrypted archive, copied
-- to every archive directory and read back. Only then is the archive recorded here,
-- through journal.record_month_archive, which checks the record against the journal
-- as it stands. journal.purge_month then detaches and drops the month's partition,
-- and only for a month whose verified archive is recorded with the digest the
-- caller names, whose partition holds exactly the archived entries, and whose hash
-- tiles are all stored (tiles and checkpoints are never removed, so the tree, every
-- later checkpoint and every proof stay verifiable online).
--
-- The three functions run with their owner's rights (the schema owner, who owns the
-- partitions) and only osmose-retentiond's role may call them: the retention role
-- itself never owns a partition, so it can neither disable their append-only
-- triggers nor remove a month any other way.

CREATE TABLE ops.journal_archives (
    month               date PRIMARY KEY CHECK (month = date_trunc('month', month)::date),
    first_sequence      bigint NOT NULL CHECK (first_sequence >= 0),
    last_sequence       bigint NOT NULL,
    entry_count         bigint NOT NULL,
    -- The earliest and latest occurred_at of the month's entries: what a search by
    -- period is told is archived.
    occurred_from       timestamptz NOT NULL,
    occurred_to         timestamptz NOT NULL,
    -- The first checkpoint whose tree holds every entry of the month (the archive's
    -- tiles give its root), and how many checkpoints the archive holds.
    covering_checkpoint bigint NOT NULL,
    covering_size       bigint NOT NULL,
    checkpoint_count    bigint NOT NULL CHECK (checkpoint_count >= 1),
    -- chain_{first−1} and chain_{last}: where the month's hash chain starts and ends.
    chain_before        bytea NOT NULL CHECK (octet_length(chain_before) = 32),
    chain_after         bytea NOT NULL CHECK (octet_length(chain_after) = 32),
    file_name           text NOT NULL CHECK (file_name ~ '^[A-Za-z0-9._-]+\.tar\.zst\.age$'),
    archive_sha256      text NOT NULL CHECK (archive_sha256 ~ '^[0-9a-f]{64}$'),
    archive_bytes       bigint NOT NULL CHECK (archive_bytes > 0),
    manifest_sha256     text NOT NULL CHECK (manifest_sha256 ~ '^[0-9a-f]{64}$'),
    -- Fingerprints of the age recipients it is encrypted to (keys.public_keys.fingerprint).
    recipients          text[] NOT NULL CHECK (cardinality(recipients) > 0),
    -- The archive directories holding a copy that was read back identical.
    copies              text[] NOT NULL CHECK (cardinality(copies) > 0),
    -- The journal signing keys the month's entries retire (`key id:sequence number` of
    -- each retirement entry, comma-separated): once the entries are purged, verify still
    -- refuses a later checkpoint signed only by such a key.
    signing_key_retirements text NOT NULL DEFAULT '' CHECK (signing_key_retirements ~ '^([0-9a-f]{8}:[0-9]+(,[0-9a-f]{8}:[0-9]+)*)?$'),
    written_by          text NOT NULL,
    written_at          timestamptz NOT NULL,
    verified_at         timestamptz NOT NULL,
    purged_at           timestamptz,
    purged_entries      bigint,
    destroyed_at        timestamptz,
    CHECK (last_sequence >= first_sequence AND entry_count = last_sequence - first_sequence + 1),
    CHECK (covering_size > last_sequence),
    CHECK (occurred_to >= occurred_from),
    CHECK ((purged_at IS NULL) = (purged_entries IS NULL)),
    CHECK (destroyed_at IS NULL OR purged_at IS NOT NULL)
);

CREATE UNIQUE INDEX journal_archives_sequences ON ops.journal_archives (first_sequence);

-- Records (or, while the month is still online, replaces) the verified archive of a
-- month, after checking it against the journal: the month's partition holds exactly
-- entries first…last, the journal has moved past the month (no entry can join it any
-- more), and the covering checkpoint is the first one whose tree holds them all.
CREATE FUNCTION journal.record_month_archive(
    p_month date, p_first bigint, p_last bigint, p_occurred_from timestamptz, p_occurred_to timestamptz,
    p_covering_checkpoint bigint, p_checkpoint_count bigint, p_chain_before bytea, p_chain_after bytea,
    p_file_name text, p_archive_sha256 text, p_archive_bytes bigint, p_manifest_sha256 text,
    p_recipients text[], p_copies text[], p_written_by text, p_written_at timestamptz, p_signing_key_retirements text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    month_start timestamptz := (p_month::text || ' 00:00:00+00')::timestamptz;
    month_end timestamptz := ((p_month + interval '1 month')::date::text || ' 00:00:00+00')::timestamptz;
    found_first bigint;
    found_last bigint;
    head_last timestamptz;
    first_covering bigint;
    covering_tree bigint;
    previous ops.journal_archives%ROWTYPE;
BEGIN
    IF p_month IS NULL OR p_month <> date_trunc('month', p_month)::date THEN
        RAISE EXCEPTION 'journal.archive: % is not the first day of a month', p_month USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO previous FROM ops.journal_archives WHERE month = p_month FOR UPDATE;
    IF FOUND AND previous.purged_at IS NOT NULL THEN
        RAISE EXCEPTION 'journal.archive: % is already purged; its recorded archive cannot change', to_char(p_month, 'YYYY-MM')
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT last_sequenced_at INTO head_last FROM journal.head;
    IF head_last < month_end THEN
        RAISE EXCEPTION 'journal.archive: the journal has not moved past % yet', to_char(p_month, 'YYYY-MM')
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT min(seq), max(seq) INTO found_first, found_last
        FROM journal.entries WHERE sequenced_at >= month_start AND sequenced_at < month_end;
    IF found_first IS DISTINCT FROM p_first OR found_last IS DISTINCT FROM p_last THEN
        RAISE EXCEPTION 'journal.archive: % holds entries % to %, the archive says % to %',
            to_char(p_month, 'YYYY-MM'), found_first, found_last, p_first, p_last USING ERRCODE = 'data_exception';
    END IF;
    SELECT id, tree_size INTO first_covering, covering_tree FROM journal.checkpoints WHERE tree_size > p_last ORDER BY id LIMIT 1;
    IF first_covering IS DISTINCT FROM p_covering_checkpoint THEN
        RAISE EXCEPTION 'journal.archive: the first checkpoint covering % is #%, the archive names #%',
            to_char(p_month, 'YYYY-MM'), first_covering, p_covering_checkpoint USING ERRCODE = 'data_exception';
    END IF;
    INSERT INTO ops.journal_archives (
        month, first_sequence, last_sequence, entry_count, occurred_from, occurred_to, covering_checkpoint, covering_size,
        checkpoint_count, chain_before, chain_after, file_name, archive_sha256, archive_bytes, manifest_sha256, recipients,
        copies, signing_key_retirements, written_by, written_at, verified_at)
    VALUES (
        p_month, p_first, p_last, p_last - p_first + 1, p_occurred_from, p_occurred_to, p_covering_checkpoint, covering_tree,
        p_checkpoint_count, p_chain_before, p_chain_after, p_file_name, p_archive_sha256, p_archive_bytes, p_manifest_sha256,
        p_recipients, p_copies, p_signing_key_retirements, p_written_by, p_written_at, clock_timestamp())
    ON CONFLICT (month) DO UPDATE SET
        first_sequence = EXCLUDED.first_sequence, last_sequence = EXCLUDED.last_sequence, entry_count = EXCLUDED.entry_count,
        occurred_from = EXCLUDED.occurred_from, occurred_to = EXCLUDED.occurred_to,
        covering_checkpoint = EXCLUDED.covering_checkpoint, covering_size = EXCLUDED.covering_size,
        checkpoint_count = EXCLUDED.checkpoint_count, chain_before = EXCLUDED.chain_before, chain_after = EXCLUDED.chain_after,
        file_name = EXCLUDED.file_name, archive_sha256 = EXCLUDED.archive_sha256, archive_bytes = EXCLUDED.archive_bytes,
        manifest_sha256 = EXCLUDED.manifest_sha256, recipients = EXCLUDED.recipients, copies = EXCLUDED.copies,
        signing_key_retirements = EXCLUDED.signing_key_retirements,
        written_by = EXCLUDED.written_by, written_at = EXCLUDED.written_at, verified_at = EXCLUDED.verified_at;
END
$$;

-- Removes a month's entries: detaches and drops its partition. Refuses unless the
-- month's verified archive is recorded with this digest, the partition holds exactly
-- the archived entries, and every level-0 hash tile over them is stored (the tree
-- stays whole without the entries). Returns the number of entries removed.
CREATE FUNCTION journal.purge_month(p_month date, p_archive_sha256 text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    archive ops.journal_archives%ROWTYPE;
    partition_name text := format('entries_%s', to_char(p_month, 'YYYY_MM'));
    found_count bigint;
    found_first bigint;
    found_last bigint;
    tiles_found bigint;
BEGIN
    IF p_month IS NULL OR p_month <> date_trunc('month', p_month)::date THEN
        RAISE EXCEPTION 'journal.purge: % is not the first day of a month', p_month USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO archive FROM ops.journal_archives WHERE month = p_month FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'journal.purge: % has no recorded archive; write and verify its archive first', to_char(p_month, 'YYYY-MM')
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF archive.purged_at IS NOT NULL THEN
        RAISE EXCEPTION 'journal.purge: % was purged at %', to_char(p_month, 'YYYY-MM'), archive.purged_at
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF p_archive_sha256 IS NULL OR archive.archive_sha256 <> p_archive_sha256 THEN
        RAISE EXCEPTION 'journal.purge: the archive named is not the verified archive recorded for %', to_char(p_month, 'YYYY-MM')
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF to_regclass(format('journal.%I', partition_name)) IS NULL THEN
        RAISE EXCEPTION 'journal.purge: journal.% does not exist', partition_name USING ERRCODE = 'undefined_table';
    END IF;
    EXECUTE format('SELECT count(*), min(seq), max(seq) FROM journal.%I', partition_name) INTO found_count, found_first, found_last;
    IF found_count <> archive.entry_count OR found_first IS DISTINCT FROM archive.first_sequence
        OR found_last IS DISTINCT FROM archive.last_sequence THEN
        RAISE EXCEPTION 'journal.purge: journal.% holds % entries (% to %), its archive % (% to %)', partition_name,
            found_count, found_first, found_last, archive.entry_count, archive.first_sequence, archive.last_sequence
            USING ERRCODE = 'data_exception';
    END IF;
    SELECT count(*) INTO tiles_found FROM journal.tiles
        WHERE level = 0 AND tile_index BETWEEN archive.first_sequence / 256 AND archive.last_sequence / 256;
    IF tiles_found <> archive.last_sequence / 256 - archive.first_sequence / 256 + 1 THEN
        RAISE EXCEPTION 'journal.purge: the hash tiles over % are not all stored yet (the journal must grow past the tile holding entry %); retry later',
            to_char(p_month, 'YYYY-MM'), archive.last_sequence USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    EXECUTE format('ALTER TABLE journal.entries DETACH PARTITION journal.%I', partition_name);
    EXECUTE format('DROP TABLE journal.%I', partition_name);
    UPDATE ops.journal_archives SET purged_at = clock_timestamp(), purged_entries = found_count WHERE month = p_month;
    RETURN found_count;
END
$$;

-- Records that a purged month's archive was destroyed at the end of its own term
-- (every copy removed). Returns false when it was already recorded.
CREATE FUNCTION journal.record_month_archive_destroyed(p_month date, p_archive_sha256 text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    archive ops.journal_archives%ROWTYPE;
BEGIN
    SELECT * INTO archive FROM ops.journal_archives WHERE month = p_month FOR UPDATE;
    IF NOT FOUND OR archive.archive_sha256 <> p_archive_sha256 THEN
        RAISE EXCEPTION 'journal.archive: no archive of % with this digest is recorded', to_char(p_month, 'YYYY-MM')
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF archive.purged_at IS NULL THEN
        RAISE EXCEPTION 'journal.archive: % is still online; its archive is destroyed only after the month is purged', to_char(p_month, 'YYYY-MM')
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF archive.destroyed_at IS NOT NULL THEN
        RETURN false;
    END IF;
    UPDATE ops.journal_archives SET destroyed_at = clock_timestamp() WHERE month = p_month;
    RETURN true;
END
$$;

REVOKE ALL ON ops.journal_archives FROM PUBLIC;
GRANT SELECT ON ops.journal_archives TO osmose_retention, osmose_auditor, osmose_backup;

REVOKE ALL ON FUNCTION journal.record_month_archive(date, bigint, bigint, timestamptz, timestamptz, bigint, bigint, bytea, bytea, text, text, bigint, text, text[], text[], text, timestamptz, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION journal.purge_month(date, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION journal.record_month_archive_destroyed(date, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION journal.record_month_archive(date, bigint, bigint, timestamptz, timestamptz, bigint, bigint, bytea, bytea, text, text, bigint, text, text[], text[], text, timestamptz, text) TO osmose_retention;
GRANT EXECUTE ON FUNCTION journal.purge_month(date, text) TO osmose_retention;
GRANT EXECUTE ON FUNCTION journal.record_month_archive_destroyed(date, text) TO osmose_retention;

-- Writing an archive reads the journal (its entries, tiles, checkpoints and head).
GRANT SELECT ON journal.entries, journal.tiles, journal.checkpoints, journal.head TO osmose_retention;
