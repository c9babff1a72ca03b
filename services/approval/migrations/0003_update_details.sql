-- What update lists show besides the approval state: product names and supersedes.
ALTER TABLE updates
    ADD COLUMN products   text[] NOT NULL DEFAULT '{}',
    ADD COLUMN supersedes text[] NOT NULL DEFAULT '{}';
