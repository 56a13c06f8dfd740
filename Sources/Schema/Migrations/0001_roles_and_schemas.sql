-- One schema per capability and one login role per daemon, each with only the
-- rights it needs (see docs/database.md). Roles are cluster-wide; creating them
-- tolerates another database of the same cluster having created them first.

DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY[
        'osmose_care',       -- osmose-care: care records; INSERT-only on the journal intake
        'osmose_journald',   -- osmose-journald: sequences the journal
        'osmose_retention',  -- osmose-retentiond: archives and purges past their term
        'osmose_backup',     -- osmose-backupd: backups catalogue
        'osmose_keyd',       -- osmose-keyd: keyring and rotation
        'osmose_dsar',       -- osmose-dsard: data-subject requests
        'osmose_auditor'     -- osmosectl journal …: the security officer, read-only on the journal
    ] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT', role_name);
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END LOOP;
END
$$;

CREATE SCHEMA IF NOT EXISTS care;
CREATE SCHEMA IF NOT EXISTS journal;
CREATE SCHEMA IF NOT EXISTS keys;
CREATE SCHEMA IF NOT EXISTS dsar;
CREATE SCHEMA IF NOT EXISTS ops;

-- Nobody gets anything by default: rights are granted table by table in later
-- migrations, by the capability that owns the table.
REVOKE ALL ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON SCHEMA care, journal, keys, dsar, ops FROM PUBLIC;

GRANT USAGE ON SCHEMA care TO osmose_care, osmose_retention, osmose_keyd, osmose_dsar;
GRANT USAGE ON SCHEMA journal TO osmose_care, osmose_journald, osmose_retention, osmose_auditor, osmose_dsar;
GRANT USAGE ON SCHEMA keys TO osmose_care, osmose_keyd, osmose_backup, osmose_retention, osmose_dsar;
GRANT USAGE ON SCHEMA dsar TO osmose_dsar;
GRANT USAGE ON SCHEMA ops TO osmose_backup, osmose_retention, osmose_keyd;
