-- The notes table as the first releases created it (IF NOT EXISTS: databases made before
-- migrations existed already have it, and adopt this version without a change).
CREATE TABLE IF NOT EXISTS app.notes (
    id bigserial PRIMARY KEY,
    body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
