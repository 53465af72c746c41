-- The time of the event that set the current outcome (events may arrive out of order).
ALTER TABLE contacts ADD COLUMN outcome_at timestamptz;
