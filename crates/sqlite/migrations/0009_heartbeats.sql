-- A token may have a heartbeat: it times out unless a heartbeat comes at least every
-- heartbeat_every milliseconds. heartbeat_deadline (epoch milliseconds) is the last heartbeat,
-- or the create, plus that interval. Both NULL for tokens without one.
ALTER TABLE waitpoints ADD COLUMN heartbeat_every INTEGER;
ALTER TABLE waitpoints ADD COLUMN heartbeat_deadline INTEGER;

-- The timeout loop finds tokens by their heartbeat deadline as it does by timeout_at.
CREATE INDEX waitpoints_heartbeats ON waitpoints (heartbeat_deadline, id)
    WHERE status = 'WAITING' AND heartbeat_deadline IS NOT NULL;
