-- A token may be rejected: status REJECTED, its error in output ({"code", "message", "data"?}).

ALTER TABLE waitpoints DROP CONSTRAINT waitpoints_status_check;
ALTER TABLE waitpoints ADD CONSTRAINT waitpoints_status_check
    CHECK (status IN ('WAITING', 'COMPLETED', 'TIMED_OUT', 'REJECTED'));
