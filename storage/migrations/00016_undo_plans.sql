-- +goose Up
-- Undoing a change of service plans. Written only by operations that
-- change plans (and the undos of them), so that the others write what
-- they wrote before.
--
-- operation_items.plans_before: for an item that changed the plans of
-- held SKUs (plans_changed) or revoked SKUs, the plans each of those SKUs
-- had off before, a JSON object of SKU to plan IDs ([] for every plan
-- on); NULL otherwise, and for items written before this migration, whose
-- plans an undo then leaves as they are.
-- operation_items.change_plans: the item's own plans to set, by SKU it
-- holds or assigns (an undo puts back each user's plans_before); NULL:
-- the operation's.
-- operation_items.expect_plans: the plans the user's licenses must have
-- off, by SKU, for the item to apply (an undo: what the original set);
-- otherwise the item fails ChangedSince.
-- operations.item_plans: its items carry plans of their own
-- (change_plans), so its workers read and write plans although the
-- operation has no disabled_plans.
ALTER TABLE operation_items ADD COLUMN plans_before jsonb;
ALTER TABLE operation_items ADD COLUMN change_plans jsonb;
ALTER TABLE operation_items ADD COLUMN expect_plans jsonb;
ALTER TABLE operations ADD COLUMN item_plans boolean NOT NULL DEFAULT false;

-- +goose Down
-- Their items would apply without the plans they restore: drop them.
DELETE FROM operation_items WHERE operation_id IN (SELECT id FROM operations WHERE item_plans);
DELETE FROM operations WHERE item_plans;
ALTER TABLE operations DROP COLUMN item_plans;
ALTER TABLE operation_items DROP COLUMN expect_plans, DROP COLUMN change_plans, DROP COLUMN plans_before;
