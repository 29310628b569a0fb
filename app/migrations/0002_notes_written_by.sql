-- Expand: which app server wrote a note. Nullable with no default, so adding it rewrites no
-- row and takes the table lock only for a moment; versions that do not know the column keep
-- inserting without it while a rollout is under way (README "Database migrations").
ALTER TABLE app.notes ADD COLUMN IF NOT EXISTS written_by text;
