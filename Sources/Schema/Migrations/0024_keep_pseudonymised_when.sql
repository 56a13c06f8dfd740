-- Migration 0021's guard of pseudonymised records ran its PL/pgSQL function for every
-- updated row, although it can refuse only a row already pseudonymised (or a version
-- already erased): a key rotation, which rewrites every row, paid for a function call
-- per row (scripts/bench keys: 41,562-42,414 values/s with it, 44,714 without). The
-- same triggers with the function's own first test as their WHEN condition: PostgreSQL
-- evaluates it without calling the function, and what the guard refuses is unchanged.
DROP TRIGGER keep_pseudonymised ON care.patients;
DROP TRIGGER keep_pseudonymised ON care.episodes;
DROP TRIGGER keep_pseudonymised ON care.transmissions;
DROP TRIGGER keep_pseudonymised ON care.record_versions;
CREATE TRIGGER keep_pseudonymised BEFORE UPDATE ON care.patients
    FOR EACH ROW WHEN (OLD.pseudonymised_at IS NOT NULL) EXECUTE FUNCTION care.keep_pseudonymised();
CREATE TRIGGER keep_pseudonymised BEFORE UPDATE ON care.episodes
    FOR EACH ROW WHEN (OLD.pseudonymised_at IS NOT NULL) EXECUTE FUNCTION care.keep_pseudonymised();
CREATE TRIGGER keep_pseudonymised BEFORE UPDATE ON care.transmissions
    FOR EACH ROW WHEN (OLD.pseudonymised_at IS NOT NULL) EXECUTE FUNCTION care.keep_pseudonymised();
CREATE TRIGGER keep_pseudonymised BEFORE UPDATE ON care.record_versions
    FOR EACH ROW WHEN (OLD.erased_at IS NOT NULL) EXECUTE FUNCTION care.keep_pseudonymised();
