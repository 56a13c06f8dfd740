-- The console's key inventory counts the values under each data key in every column
-- of the registry of encrypted columns, and its journal verification reads the
-- record of cold archives. Migration 0040 granted what existed when the console was
-- written; the date of death (0021), the subject-request register (0030) and the
-- journal archives (0025) came beside it. The encrypted columns and row ids only (a
-- ciphertext names its key): the console holds no master key, so it reads no value
-- in clear, and no other column of the register.
GRANT SELECT (date_of_death) ON care.patients TO osmose_console;
GRANT USAGE ON SCHEMA dsar TO osmose_console;
GRANT SELECT (id, requester_name, requester_contact, identity_check) ON dsar.requests TO osmose_console;
GRANT SELECT (id, body) ON dsar.notes TO osmose_console;
GRANT SELECT (id, file_name, content) ON dsar.documents TO osmose_console;
GRANT SELECT (id, removed_text) ON dsar.redactions TO osmose_console;
GRANT SELECT (id, content) ON dsar.packs TO osmose_console;
GRANT SELECT ON ops.journal_archives TO osmose_console;
