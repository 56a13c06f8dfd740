-- The DPO's pages of osmose-console (docs/console.md, "DPO pages"): the register
-- of subject requests and their access packs, rectification recipients, retention
-- plans and their approval, legal holds, disposition certificates. The console
-- calls the same library functions as `osmosectl dsar` and `osmosectl retention`;
-- its role is granted what those functions read and write, and nothing more:
--
-- * the register (schema dsar) as osmose_dsar has it, but the jobs queue (the
--   console works with the master key it holds, it queues nothing) and the
--   documents' content (no page opens a document);
-- * the care tables an access pack lists (read only), and of the care accounts
--   only the columns that name a member of staff (never a password hash);
-- * the keyring's data keys (wrapped: they open only with the master key, which
--   the console receives as the `master-key` systemd credential);
-- * the retention records: plans (computed and stored from the console, never
--   changed), approvals (the database checks the digest), legal holds (placed,
--   then released once), runs, their items and certificates (read only).
--
-- And, as for every daemon (0015), the intake rows the console inserts are bound
-- to its role: source `osmose-console`, an actor role of the suite's staff (or
-- none, for a sign-in that named no account), dated within minutes of the
-- database clock. A compromised console cannot write an event in osmose-care's
-- or osmosectl's name, as a care user or as the system.

GRANT SELECT, INSERT, UPDATE ON dsar.requests, dsar.deadlines, dsar.notes, dsar.redactions, dsar.packs, dsar.rectifications TO osmose_console;
GRANT DELETE ON dsar.redactions TO osmose_console;
GRANT SELECT, INSERT ON dsar.steps TO osmose_console;
GRANT SELECT (id, request_id, file_name, media_type, size, sha256, attached_at, attached_by) ON dsar.documents TO osmose_console;
GRANT USAGE ON SEQUENCE dsar.requests_number_seq TO osmose_console;

GRANT SELECT ON care.teams, care.patients, care.episodes, care.episode_teams, care.transmissions, care.record_versions,
    care.patient_restrictions, care.restriction_overrides, care.sessions TO osmose_console;
GRANT SELECT (id, username, display_name, role, team_id) ON care.users TO osmose_console;
GRANT SELECT ON keys.data_keys TO osmose_console;

GRANT SELECT, INSERT ON ops.legal_holds, ops.retention_plans, ops.retention_approvals TO osmose_console;
-- An approval locks its plan's row (SELECT … FOR UPDATE), which PostgreSQL allows
-- only to a role with an UPDATE privilege on the table: one column's, which the
-- plans' immutability trigger (0020) still refuses to change.
GRANT UPDATE (computed_by) ON ops.retention_plans TO osmose_console;
GRANT UPDATE (released_by, released_at, release_reason) ON ops.legal_holds TO osmose_console;
GRANT USAGE ON SEQUENCE ops.legal_holds_id_seq, ops.retention_plans_id_seq TO osmose_console;
GRANT SELECT ON ops.retention_runs, ops.retention_run_items, ops.retention_certificates TO osmose_console;

-- 0015's function, with the console's branch added (the other branches unchanged).
CREATE OR REPLACE FUNCTION journal.bind_intake_row() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog
    AS $$
    DECLARE
        own_program text := CASE current_user
            WHEN 'osmose_care' THEN 'osmose-care'
            WHEN 'osmose_keyd' THEN 'osmose-keyd'
            WHEN 'osmose_backup' THEN 'osmose-backupd'
            WHEN 'osmose_retention' THEN 'osmose-retentiond'
            WHEN 'osmose_dsar' THEN 'osmose-dsard'
            WHEN 'osmose_console' THEN 'osmose-console'
        END;
    BEGIN
        IF own_program IS NULL THEN
            RETURN NEW;
        END IF;
        IF own_program = 'osmose-care' THEN
            IF NEW.source <> own_program THEN
                RAISE EXCEPTION 'journal.forged_source: role % writes events as %, not %', current_user, own_program, NEW.source
                    USING ERRCODE = '42501';
            END IF;
            IF NEW.actor_role IS NOT NULL AND NEW.actor_role NOT IN ('agent', 'manager', 'admin') THEN
                RAISE EXCEPTION 'journal.forged_role: role % records care users only, not actor role %', current_user, NEW.actor_role
                    USING ERRCODE = '42501';
            END IF;
        ELSIF own_program = 'osmose-console' THEN
            -- The console acts only for a signed-in member of staff (or records a
            -- sign-in that named no account): never as the system, never as osmosectl.
            IF NEW.source <> own_program THEN
                RAISE EXCEPTION 'journal.forged_source: role % writes events as %, not %', current_user, own_program, NEW.source
                    USING ERRCODE = '42501';
            END IF;
            IF NEW.actor_role IS NOT NULL AND NEW.actor_role NOT IN ('sysadmin', 'security-officer', 'dpo') THEN
                RAISE EXCEPTION 'journal.forged_role: role % records the suite''s staff only, not actor role %', current_user, NEW.actor_role
                    USING ERRCODE = '42501';
            END IF;
        ELSIF NEW.source = own_program THEN
            IF NEW.actor_role IS DISTINCT FROM 'system' THEN
                RAISE EXCEPTION 'journal.forged_role: events of % are by the system actor, not %', own_program, coalesce(NEW.actor_role, 'none')
                    USING ERRCODE = '42501';
            END IF;
        ELSIF NEW.source = 'osmosectl' THEN
            IF NEW.actor_role IS NULL OR NEW.actor_role NOT IN ('sysadmin', 'security-officer', 'dpo') THEN
                RAISE EXCEPTION 'journal.forged_role: operator events carry an operator role, not %', coalesce(NEW.actor_role, 'none')
                    USING ERRCODE = '42501';
            END IF;
        ELSE
            RAISE EXCEPTION 'journal.forged_source: role % writes events as % or osmosectl, not %', current_user, own_program, NEW.source
                USING ERRCODE = '42501';
        END IF;
        IF NEW.occurred_at < clock_timestamp() - interval '5 minutes' OR NEW.occurred_at > clock_timestamp() + interval '1 minute' THEN
            RAISE EXCEPTION 'journal.forged_time: role % dates events within 5 minutes of the database clock, not %', current_user, NEW.occurred_at
                USING ERRCODE = '42501';
        END IF;
        RETURN NEW;
    END
    $$;
