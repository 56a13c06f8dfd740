-- An intake row is bound to the role that inserts it, as the intake socket binds
-- `source` to its peer's uid: a daemon's role cannot write an event in another
-- program's name, give its actor another program's role, or date it away from
-- the moment it is written. A compromised osmose-care can then still lie about
-- what it does, but not pass its events off as osmose-keyd's, as an
-- administrator's, or as last year's.
--
-- For each daemon role:
--   source      its own program, or osmosectl (an operator's command run with the
--               daemon's connection); osmose-care only its own;
--   actor_role  under its own program name, `system` (the daemon acting on its
--               own); under osmosectl, an operator's role (sysadmin,
--               security-officer, dpo); osmose-care only a care user's role
--               (agent, manager, admin) or none (a request not yet authenticated);
--   occurred_at within 5 minutes before and 1 minute after the database clock
--               (clock_timestamp(), not the transaction's start: a long
--               transaction writes its event at its end).
-- osmose_journald inserts what its socket accepted, under the source its peer is
-- mapped to (the socket checks the rest), and its own events; administrators
-- (migrations, tests, repairs) are not bound.

CREATE FUNCTION journal.bind_intake_row() RETURNS trigger
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

CREATE TRIGGER bind_intake_row BEFORE INSERT ON journal.intake FOR EACH ROW EXECUTE FUNCTION journal.bind_intake_row();
