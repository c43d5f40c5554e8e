-- +goose Up
-- Copy licenses from a user: copy_from is the reference user, whose
-- licenses were read at intake into the operation's assign. exact also
-- revokes, from each user when its item is applied, every license that is
-- not in assign.
ALTER TABLE operations ADD COLUMN copy_from text;
ALTER TABLE operations ADD COLUMN exact boolean NOT NULL DEFAULT false;

-- +goose Down
-- Their items would no longer revoke what the reference user lacks: drop them.
DELETE FROM operation_items WHERE operation_id IN (SELECT id FROM operations WHERE exact);
DELETE FROM operations WHERE exact;
ALTER TABLE operations DROP COLUMN exact, DROP COLUMN copy_from;
