-- Backup ids gain milliseconds (20261204T175247.020Z), so that two backups started
-- within the same second get distinct ids and nothing waits for the next second.
-- Ids written before keep their form (20261122T013000Z); both sort in time order.

ALTER TABLE ops.backups DROP CONSTRAINT backups_id_check;
ALTER TABLE ops.backups ADD CONSTRAINT backups_id_check CHECK (id ~ '^[0-9]{8}T[0-9]{6}(\.[0-9]{3})?Z$');
