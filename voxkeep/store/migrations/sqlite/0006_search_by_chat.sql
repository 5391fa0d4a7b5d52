-- Search answers with chats (docs/store.md, search): a message's rowid is its chat's rowid times
-- 2^24 plus its seq, so the search index, keyed by the same rowid, holds each chat's words as one
-- range of keys. "Does this chat say this word" is then one seek in the index, and "which chats
-- say it" needs no lookup in `messages`. Expand only: code of schema 2 runs on it. Its inserts,
-- which let SQLite choose the rowid, are moved to their key by a trigger; the search index keeps
-- the rowid of `messages`, as that code reads it.
-- oldest code: 2

-- Number the messages already stored: out of the way first, so no key meets a rowid in use.
DROP TRIGGER messages_fts_insert;
UPDATE messages SET rowid = -rowid;
UPDATE messages SET rowid = (SELECT c.rowid FROM chats c WHERE c.id = messages.chat_id) * 16777216 + seq;
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');

-- A chat holds fewer than 2^24 messages, or its keys would run into the next chat's.
CREATE TRIGGER messages_seq_bound BEFORE INSERT ON messages WHEN new.seq >= 16777216 BEGIN
    SELECT RAISE(ABORT, 'a chat holds at most 16777215 messages');
END;

-- A row inserted at its key (as this code inserts) goes into the search index as it is ...
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
WHEN new.content IS NOT NULL
 AND new.rowid = (SELECT c.rowid FROM chats c WHERE c.id = new.chat_id) * 16777216 + new.seq
BEGIN
    INSERT INTO messages_fts (rowid, content) VALUES (new.rowid, new.content);
END;

-- ... and one at a rowid of SQLite's choosing (older code, or a chat created in the same batch)
-- moves to its key first. The two never both fire.
CREATE TRIGGER messages_keyed AFTER INSERT ON messages
WHEN new.rowid <> (SELECT c.rowid FROM chats c WHERE c.id = new.chat_id) * 16777216 + new.seq
BEGIN
    UPDATE messages
    SET rowid = (SELECT c.rowid FROM chats c WHERE c.id = new.chat_id) * 16777216 + new.seq
    WHERE rowid = new.rowid;
    INSERT INTO messages_fts (rowid, content)
    SELECT (SELECT c.rowid FROM chats c WHERE c.id = new.chat_id) * 16777216 + new.seq,
           new.content
    WHERE new.content IS NOT NULL;
END;
