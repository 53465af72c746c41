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
-- A mark that carries the address of the version its claim wrote (p_at,
-- the claim's ctid; the claim is a HOT update, migration 0033) finds the row
-- there: one heap page instead of a descent of the primary key. The row is
-- taken only if it is still that version (the same id, attempt and a
-- pending status: a row updated since has a new address, and a row moved by
-- VACUUM FULL or CLUSTER is another row there, refused by the id); the marks
-- that did not take that way, and those without an address (the previous
-- release's calls, which pass four arrays), go by the primary key.
--
-- Commits without waiting for the WAL flush (synchronous_commit off for the
-- caller's transaction, which is the statement's own): what a crash of the
-- database can lose is a mark, and that only means the event is sent once
-- more, with the same id, which at-least-once allows.
CREATE OR REPLACE FUNCTION deliveries_mark(
    p_id       uuid[],
    p_attempts integer[],
    p_error    text[],
    p_retry_in double precision[],
    p_at       tid[] DEFAULT NULL
) RETURNS TABLE (delivery_id uuid, attempts integer) LANGUAGE plpgsql
  SET plan_cache_mode = force_generic_plan
  SET enable_seqscan = off
  SET enable_hashjoin = off
  SET enable_mergejoin = off
AS $$
#variable_conflict use_column
DECLARE
    done_id       uuid[] := '{}';
    done_attempts integer[] := '{}';
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    IF p_at IS NOT NULL THEN
        WITH marked AS (
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
              FROM unnest(p_id, p_attempts, p_error, p_retry_in, p_at)
                   AS m(delivery_id, attempts, error, retry_in, at)
             WHERE d.ctid = m.at AND d.delivery_id = m.delivery_id AND d.attempts = m.attempts
               AND d.status NOT IN ('delivered', 'failed')
            RETURNING d.delivery_id, d.attempts)
        SELECT coalesce(array_agg(marked.delivery_id), '{}'),
               coalesce(array_agg(marked.attempts), '{}')
          INTO done_id, done_attempts
          FROM marked;
        RETURN QUERY SELECT * FROM unnest(done_id, done_attempts);
        IF cardinality(done_id) = cardinality(p_id) THEN
            RETURN;
        END IF;
    END IF;
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
       AND NOT (d.delivery_id = ANY (done_id))
    RETURNING d.delivery_id, d.attempts;
END
$$;
