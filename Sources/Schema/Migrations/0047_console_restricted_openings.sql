-- The security officer's alerts list the openings of restricted records (GDPR
-- art. 18(2), written by osmose-care in care.restriction_overrides, each with its
-- journal event) of the last 30 days, newest first: by their moment, through an
-- index, and read by the console's role (ids, ground and endpoint: no value in
-- clear). The accounts' names come through the columns 0046 granted.
CREATE INDEX restriction_overrides_occurred ON care.restriction_overrides (occurred_at);
GRANT SELECT ON care.restriction_overrides TO osmose_console;

