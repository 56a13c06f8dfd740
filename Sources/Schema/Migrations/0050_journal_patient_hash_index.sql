-- Searches by patient: a hash index instead of the BRIN Bloom index of migration
-- 0013. A Bloom filter per 16 heap pages made an append nearly free, but a search
-- reads every range whose filter may hold the patient: on a journal of 1,000,000
-- entries, ~730 heap pages and ~18,000 rows re-checked for a patient's ~40 entries
-- (45 ms, two parallel workers); at 20,000,000 entries and ~400 entries a patient,
-- ~6,400 pages, too slow for the security officer's search and the subject-access
-- pack under load (bench console, 2026-12-05: 10 searches/s on 2 cores at 1M). A
-- hash index leads straight to the patient's rows. What it costs osmose-journald,
-- measured by hand on 2,000,000 events (2 cores, quiet): 104,000–111,000 events/s
-- against 113,000–116,000 with the Bloom index (a B-tree on (patient_id, seq) cost
-- more: 86,000–87,000). Searches by user keep their Bloom index; searches by
-- period, the BRIN index on occurred_at.
-- Building the index reads every entry once; appends wait for it (the intake
-- holds the events meanwhile, nothing is lost).
DROP INDEX journal.entries_patient;
CREATE INDEX entries_patient ON journal.entries USING hash (patient_id);
