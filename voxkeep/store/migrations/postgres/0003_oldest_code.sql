-- Each migration's row says the oldest code that can run on the schema it leaves, by that code's
-- schema version (docs/store.md, upgrades). Expand only: code of schema 2 runs on it.
-- oldest code: 2

ALTER TABLE schema_migrations ADD COLUMN oldest_code INTEGER NOT NULL DEFAULT 1;
