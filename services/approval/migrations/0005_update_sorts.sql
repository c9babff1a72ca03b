-- The update list's sorts (approval.update.list.v1 `sort`), each with the update id that
-- breaks ties: a page of tens of thousands of updates is read off one of these indexes
-- (backwards for descending order) instead of sorting the whole table. The expressions are
-- those of services/approval/store/updates.py SORT_SQL, written the same way.
CREATE INDEX updates_by_release_date ON updates (release_date, update_id);
CREATE INDEX updates_by_title ON updates (lower(title), update_id);
CREATE INDEX updates_by_kb ON updates ((coalesce(length(kb), 0)), (coalesce(kb, '')), update_id);
CREATE INDEX updates_by_classification ON updates (classification, update_id);
CREATE INDEX updates_by_severity ON updates (
    (CASE severity WHEN 'Low' THEN 1 WHEN 'Moderate' THEN 2 WHEN 'Important' THEN 3
     WHEN 'Critical' THEN 4 ELSE 0 END),
    update_id
);
