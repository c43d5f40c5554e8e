-- +goose Up
-- Group-based licensing (Microsoft Entra ID): a user may hold a license
-- directly, through groups it is a member of, or both. The mirror records
-- how, so that a revoke of a license held only through a group is refused
-- before Graph is called, and one held both ways keeps its seat. Rows of
-- a local directory, and every row before this migration, are direct.
ALTER TABLE assignments ADD COLUMN direct boolean NOT NULL DEFAULT true;
ALTER TABLE assignments ADD COLUMN inherited_from text[] NOT NULL DEFAULT '{}';

-- Group licenses the directory failed to give a user (licenseAssignmentStates
-- in state Error), as of the customer's last sync. The user does not hold
-- them; group_id is '' when the directory did not name the group.
CREATE TABLE user_license_errors (
    customer_key bigint NOT NULL,
    user_id      text NOT NULL,
    sku_id       text NOT NULL,
    group_id     text NOT NULL DEFAULT '',
    error        text NOT NULL,
    PRIMARY KEY (customer_key, user_id, sku_id, group_id),
    FOREIGN KEY (customer_key, user_id) REFERENCES users ON DELETE CASCADE
);
CREATE INDEX user_license_errors_by_sku ON user_license_errors (customer_key, sku_id);

-- Display names of the groups that assign licenses, as of the last sync,
-- for messages and lists; a group whose name could not be read is absent
-- and shown by its ID.
CREATE TABLE directory_groups (
    customer_key bigint NOT NULL REFERENCES customers ON DELETE CASCADE,
    group_id     text NOT NULL,
    display_name text NOT NULL,
    PRIMARY KEY (customer_key, group_id)
);

-- The group side of an item of a user who inherits licenses (NULL for all
-- others): the direct assignments to add or remove in the directory, the
-- user's license sources before and after, and the report's note.
ALTER TABLE operation_items ADD COLUMN group_licenses jsonb;

-- +goose Down
ALTER TABLE operation_items DROP COLUMN group_licenses;
DROP TABLE directory_groups;
DROP TABLE user_license_errors;
-- Licenses held only through a group stay (they use seats) and look direct
-- until the customer is synced again.
ALTER TABLE assignments DROP COLUMN inherited_from, DROP COLUMN direct;
