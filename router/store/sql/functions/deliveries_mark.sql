-- Record the outcomes of delivery attempts (router/store/deliveries.py:
-- mark), a batch of them in one statement: delivered (no error), due again
-- in retry_in seconds, or dead (failed: an error and no retry_in). A mark is
-- fenced by its attempt number: it takes only while the row is pending and
-- its attempt still holds it; it ends the attempt's lease. Returns the marks
-- that took.
--
-- A function for its plan, not for its logic. Every row is found by its
-- primary key from the batch's ids (a nested loop over the arrays), whatever
-- the statistics and the table's size said when the plan was made. As one
-- statement of the application its plan went wrong two ways, both seen on
-- a backlog (docs/operations.md, "The outbox's marks"):
-- * the connection's generic plan, made while the outbox was empty (a new
--   database, or an instance started while nothing was pending), read every
--   pending row (the partial index of due rows, then a hash join) for every
--   mark: 5-10x slower per mark, growing with the backlog;
-- * statistics gathered while the outbox was drained (the usual case) put
--   the pending rows at about none, so custom plans chose the same.
-- Hence: seq scans, hash and merge joins off for the function, the generic
-- plan made once per connection (no planning per call), and the status test
-- written so that it does not match the due index's predicate (status =
-- 'pending'), which would offer that index to the planner: the CHECK on
-- status allows pending, delivered and failed only, so "neither delivered
-- nor failed" is "pending".
--
-- Commits without waiting for the WAL flush (synchronous_commit off for the
-- caller's transaction, which is the statement's own): what a crash of the
-- database can lose is a mark, and that only means the event is sent once
-- more, with the same id, which at-least-once allows.
CREATE OR REPLACE FUNCTION deliveries_mark(
    p_id       uuid[],
    p_attempts integer[],
    p_error    text[],
    p_retry_in double precision[]
) RETURNS TABLE (delivery_id uuid, attempts integer) LANGUAGE plpgsql
  SET plan_cache_mode = force_generic_plan
  SET enable_seqscan = off
  SET enable_hashjoin = off
  SET enable_mergejoin = off
AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN QUERY
    UPDATE deliveries d
       SET status = CASE WHEN m.error IS NULL THEN 'delivered'
                         WHEN m.retry_in IS NULL THEN 'failed'
                         ELSE 'pending' END,
           delivered_at = CASE WHEN m.error IS NULL THEN now() ELSE d.delivered_at END,
           last_error = left(m.error, 500),
           next_attempt_at = CASE WHEN m.error IS NOT NULL AND m.retry_in IS NOT NULL
                                  THEN now() + make_interval(secs => m.retry_in)
                                  ELSE d.next_attempt_at END,
           leased_until = NULL
      FROM unnest(p_id, p_attempts, p_error, p_retry_in)
           AS m(delivery_id, attempts, error, retry_in)
     WHERE d.delivery_id = m.delivery_id AND d.attempts = m.attempts
       AND d.status NOT IN ('delivered', 'failed')
    RETURNING d.delivery_id, d.attempts;
END
$$;
