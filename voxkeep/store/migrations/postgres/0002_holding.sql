-- Resume and the sweeper (docs/resume.md): find a call's live rows and the active chats quickly.
CREATE INDEX calls_live ON calls (chat_id) WHERE ended_at IS NULL;
CREATE INDEX chats_active ON chats (updated_at) WHERE status = 'active';
