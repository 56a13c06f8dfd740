-- Hybrid post-quantum backup recipients (age1pq1…, ML-KEM-768 + X25519) are 1959
-- characters: the keyring's public keys may be that long.

ALTER TABLE keys.public_keys DROP CONSTRAINT public_keys_public_key_check;
ALTER TABLE keys.public_keys ADD CONSTRAINT public_keys_public_key_check
    CHECK (public_key ~ '^[!-~]+$' AND length(public_key) <= 2100);
