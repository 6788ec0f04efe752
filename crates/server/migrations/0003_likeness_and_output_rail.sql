-- What a session's client does with the replies (space-separated: text, voice, image) and
-- where its audience is: the request each turn's likeness-consent check compares.
ALTER TABLE sessions ADD COLUMN likeness_uses TEXT NOT NULL DEFAULT 'text';
ALTER TABLE sessions ADD COLUMN territory TEXT;

-- What the output rail withheld from each reply and how it was repaired (JSON object; the
-- withheld sentences themselves are never stored).
ALTER TABLE turns ADD COLUMN output_rail TEXT NOT NULL DEFAULT '{}';
