-- Each reply's signed provenance record (JSON: payload, alg, key_id, signature), kept with
-- the turn so that it can be produced again for audit; NULL where the server had no signer.
ALTER TABLE turns ADD COLUMN provenance TEXT;
