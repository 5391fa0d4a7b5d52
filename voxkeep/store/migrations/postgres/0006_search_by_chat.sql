-- SQLite's 0006 numbers each message by its chat, so that its search index answers with chats
-- (docs/store.md, search). PostgreSQL's search reads its GIN index and needs no such numbering:
-- this migration changes nothing, and keeps the two backends' schema versions in step.
-- Expand only: code of schema 2 runs on it.
-- oldest code: 2

SELECT 1;
