-- The event log holds a row per committed batch instead of a row per event: a batch of many
-- operations appends one row (one heap tuple and one index entry, not a few per event), which
-- is what the log cost the write path. A row's events are a JSON array in the batch's order;
-- `last` is the position of its last event, so its events are at `last - count + 1 ..= last`.
-- Positions are given as before: by whoever reads the log next, one sequencer at a time, in
-- insert order (`id`), so they grow in commit order. One index, on `last`, serves the readers,
-- the sequencer (its NULLs are the rows to sequence) and the purge.
CREATE TABLE event_batches (
    id           BIGSERIAL,       -- insert order
    last         BIGINT UNIQUE,   -- NULL until sequenced (its index finds those too)
    count        INTEGER NOT NULL CHECK (count > 0),
    environments TEXT[]  NOT NULL, -- the environments its events belong to, for filtering
    events       TEXT    NOT NULL, -- JSON array of {environment, kind, subject, tags, data, at}
    created_at   BIGINT  NOT NULL  -- epoch milliseconds, of the batch's first event
);

-- Every event becomes a batch of its own, keeping its position (or lack of one) and its order.
INSERT INTO event_batches (id, last, count, environments, events, created_at)
SELECT id, seq, 1, ARRAY[environment_id],
    json_build_array(json_build_object(
        'environment', environment_id, 'kind', kind, 'subject', subject, 'tags', to_json(tags),
        'data', data::json, 'at', created_at))::text,
    created_at
FROM events;
SELECT setval(pg_get_serial_sequence('event_batches', 'id'), coalesce(max(id), 0) + 1, false) FROM event_batches;

DROP TABLE events;
