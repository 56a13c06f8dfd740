-- The register's due day kept on the request: the earliest deadline in force
-- (dsar.deadlines, due_on set), as the register showed it by grouping the deadlines
-- on every page view. The console's register page counts the open, overdue and
-- due-soon requests on each view; grouping 10,000 deadlines and joining them to
-- their requests took ~11 ms of the ~17 ms its queries took (bench console,
-- 2026-12-05), the counts now read one table.
--
-- Only the trigger on dsar.deadlines writes the column: it locks the request row
-- (as the library does before it writes a deadline), so two writers of one
-- request's deadlines cannot leave a stale day; a direct UPDATE of due_on is
-- refused, so no role can hide an overdue request from the register's counts. A
-- disposed request is left as it is (nothing may change it, and its deadlines
-- never change). The functions run as the caller: every role that writes deadlines
-- may update its requests.
ALTER TABLE dsar.requests ADD COLUMN due_on date;

ALTER TABLE dsar.requests DISABLE TRIGGER keep_disposed;
UPDATE dsar.requests r SET due_on = d.due
FROM (SELECT request_id, min(due_on) AS due FROM dsar.deadlines WHERE in_force AND due_on IS NOT NULL GROUP BY request_id) d
WHERE d.request_id = r.id;
ALTER TABLE dsar.requests ENABLE TRIGGER keep_disposed;

CREATE FUNCTION dsar.keep_due_on() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    request uuid;
    due date;
BEGIN
    FOREACH request IN ARRAY CASE TG_OP
        WHEN 'INSERT' THEN ARRAY[NEW.request_id]
        WHEN 'DELETE' THEN ARRAY[OLD.request_id]
        ELSE ARRAY[OLD.request_id, NEW.request_id] END
    LOOP
        PERFORM 1 FROM dsar.requests WHERE id = request FOR UPDATE;
        SELECT min(d.due_on) INTO due FROM dsar.deadlines d WHERE d.request_id = request AND d.in_force AND d.due_on IS NOT NULL;
        UPDATE dsar.requests SET due_on = due WHERE id = request AND disposed_at IS NULL AND due_on IS DISTINCT FROM due;
    END LOOP;
    RETURN NULL;
END
$$;
CREATE TRIGGER deadlines_due_on AFTER INSERT OR UPDATE OR DELETE ON dsar.deadlines FOR EACH ROW EXECUTE FUNCTION dsar.keep_due_on();

CREATE FUNCTION dsar.refuse_due_on_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_trigger_depth() = 1 THEN
        RAISE EXCEPTION 'dsar.requests.due_on follows the deadlines (dsar.deadlines): write those instead'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER due_on_from_deadlines BEFORE UPDATE OF due_on ON dsar.requests FOR EACH ROW
    WHEN (OLD.due_on IS DISTINCT FROM NEW.due_on) EXECUTE FUNCTION dsar.refuse_due_on_change();
