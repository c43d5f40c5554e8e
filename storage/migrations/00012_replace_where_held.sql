-- +goose Up
-- Replace where held: pairs (replace_from[i] → replace_to[i]) that swap a
-- license only for the users who hold replace_from[i] when their item is
-- applied. The operation's assign also lists every replace_to (granted_mask
-- bits index assign) and its revoke every replace_from; the worker drops a
-- replace_to for a user who holds none of its replace_from.
ALTER TABLE operations ADD COLUMN replace_from text[] NOT NULL DEFAULT '{}';
ALTER TABLE operations ADD COLUMN replace_to text[] NOT NULL DEFAULT '{}';

-- +goose Down
-- Their items would assign every replace_to to everyone: drop them.
DELETE FROM operation_items WHERE operation_id IN (SELECT id FROM operations WHERE cardinality(replace_from) > 0);
DELETE FROM operations WHERE cardinality(replace_from) > 0;
ALTER TABLE operations DROP COLUMN replace_to, DROP COLUMN replace_from;
